"""kde: Plasma's packages and SDDM as the display manager, checked on the rendered config and its hook.

Plasma is far too large to install in a test, so the packages are checked against Debian's
archive metadata (apt-cache) and the hook runs in a private root with SDDM's unit file in place.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.kde import PACKAGES, SDDM_CONF, SESSION

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

CLAN = """
[meta]
name = "kde"
[machines.laptop]
[instances.kde]
roles.default.machines.laptop = {}
"""


def test_clans_readme_example_checks_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = check_and_build(example_clan("kde", tmp_path, monkeypatch))
    assert built.check.checks == []
    for machine in ("desktop", "laptop"):
        manifest = built.generations[machine].manifest
        assert set(PACKAGES) <= set(manifest.packages)
        assert SDDM_CONF in manifest.files
        assert [h.name for h in manifest.hooks] == ["kde-display-manager"]


def test_the_packages_are_debians_plasma_wayland_session_and_sddm() -> None:
    """Every package exists in Debian 12, and together they bring Plasma, KWin on Wayland and an X server."""
    shown = subprocess.run(["apt-cache", "show", "--no-all-versions", *PACKAGES], capture_output=True, text=True,
                           check=True).stdout
    found = [line.split(": ", 1)[1] for line in shown.splitlines() if line.startswith("Package: ")]
    assert sorted(found) == sorted(PACKAGES)
    depends = subprocess.run(["apt-cache", "depends", "--no-recommends", "--no-suggests", *PACKAGES],
                             capture_output=True, text=True, check=True).stdout
    for needed in ("plasma-desktop", "plasma-workspace", "kwin-wayland", "xserver-xorg"):
        assert f"Depends: {needed}" in depends, needed


def test_sddm_config_and_no_settings(make_clan: MakeClan) -> None:
    cfg = make_clan(CLAN).evaluator.config("laptop")
    text = cfg.files[SDDM_CONF].content
    assert "Current=debian-breeze" in text and "DisplayServer=x11" in text
    with pytest.raises(ClanError) as err:
        _ = make_clan(CLAN + 'roles.default.settings.theme = "dark"\n', name="bad").resolved
    assert err.value.problems[0].kind == "unknown-setting"


def test_the_hook_makes_sddm_the_display_manager_and_boots_graphical(
    make_clan: MakeClan, isolated: Isolated, etc_upper: Path
) -> None:
    hook = make_clan(CLAN).evaluator.config("laptop").hooks["kde-display-manager"].script
    missing = isolated(hook, check=False)
    assert missing.returncode == 1 and "sddm is not installed" in missing.stderr

    unit = b"[Service]\nExecStart=/usr/bin/sddm\n[Install]\nAlias=display-manager.service\n"
    files = {"/usr/lib/systemd/system/sddm.service": unit, "/root/hook.sh": hook.encode()}
    done = isolated(
        "sh /root/hook.sh && sh /root/hook.sh && cat /var/lib/sddm/state.conf", files=files  # idempotent
    )
    assert done.stdout == f"[Last]\nSession={SESSION}\n"
    assert (etc_upper / "X11/default-display-manager").read_text() == "/usr/bin/sddm\n"
    assert (etc_upper / "systemd/system/display-manager.service").readlink() == Path("/lib/systemd/system/sddm.service")
    assert (etc_upper / "systemd/system/default.target").readlink() == Path("/lib/systemd/system/graphical.target")
