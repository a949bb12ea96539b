"""The activation's POSIX-sh library is a packaged data file, and every rendered script passes shellcheck."""

from __future__ import annotations

import subprocess
from importlib import resources
from pathlib import Path

from pyclan.build import activation
from pyclan.build.generation import empty_generation, generation_of
from pyclan.build.layout import HOST_ROOT
from pyclan.config.machine_config import MachineConfig, SecretFileSpec

SRC = Path(__file__).resolve().parents[2] / "src"
SECRET = "/var/lib/pyclan/secrets/pw/hash"
UNIT = "[Unit]\nDescription=x\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"


def everything() -> MachineConfig:
    """A configuration that fills every generated function of the script."""
    c = MachineConfig().file("/etc/app/conf", "x\n").package("hello").group("team", gid=1234, members=["www-data"])
    c.user("alice", groups=["team"], authorized_keys=["ssh-ed25519 AAAA alice"], hashed_password_file=SECRET)
    c.unit("app.service", UNIT, restart_on=["/etc/app/conf"]).hook("a", "echo a").check("app", unit="app.service")
    c.secrets[SECRET] = SecretFileSpec(path=SECRET, generator="pw", file="hash", mode="0400")
    return c


def shellcheck(*args: str, text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["shellcheck", *args], input=text, text=True, capture_output=True, check=False)


def test_the_library_is_the_packaged_drift_sh_and_activation_sh_with_the_host_root() -> None:
    files = resources.files("pyclan.build")
    drift, packaged = (files.joinpath(n).read_text(encoding="utf-8") for n in ("drift.sh", "activation.sh"))
    assert "R=/var/lib/pyclan  #" in packaged
    head, tail = packaged.split("R=/var/lib/pyclan  #", 1)
    assert activation.LIBRARY.startswith(drift + "\n" + head)
    assert tail.split("\n", 1)[1] in activation.LIBRARY and drift == activation.DRIFT
    assert f"\nR={HOST_ROOT}\n" in activation.LIBRARY
    assert activation.LIBRARY in generation_of("m", everything(), {SECRET: "d"}).script


def test_every_packaged_shell_file_passes_shellcheck() -> None:
    files = sorted(str(p) for p in SRC.rglob("*.sh"))
    assert str(SRC / "pyclan/build/activation.sh") in files
    proc = shellcheck(*files)
    assert proc.returncode == 0, proc.stdout


def test_every_rendered_activation_script_passes_shellcheck() -> None:
    for gen in (generation_of("m", everything(), {SECRET: "d"}), empty_generation("m")):
        proc = shellcheck("-", text=gen.script)
        assert proc.returncode == 0, proc.stdout
