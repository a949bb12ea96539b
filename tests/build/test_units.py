"""Enablement links from a unit's [Install] section."""

from __future__ import annotations

from pyclan.build.units import enablement_links, install_section

D = "/etc/systemd/system"


def test_wanted_required_and_alias() -> None:
    unit = (
        "[Unit]\nWantedBy=not-here.target\n[Install]\nWantedBy=multi-user.target \\\n  timers.target\n"
        "RequiredBy=x.target\nAlias=other.service\n# WantedBy=commented.target\n"
    )
    assert install_section(unit)["WantedBy"] == ["multi-user.target", "timers.target"]
    assert enablement_links("a.service", unit) == {
        f"{D}/multi-user.target.wants/a.service": f"{D}/a.service",
        f"{D}/timers.target.wants/a.service": f"{D}/a.service",
        f"{D}/x.target.requires/a.service": f"{D}/a.service",
        f"{D}/other.service": f"{D}/a.service",
    }


def test_empty_assignment_resets_and_templates_need_a_default_instance() -> None:
    assert enablement_links("a.service", "[Install]\nWantedBy=a.target\nWantedBy=\n") == {}
    assert enablement_links("t@.service", "[Install]\nWantedBy=multi-user.target\n") == {}
    assert enablement_links("t@.service", "[Install]\nWantedBy=multi-user.target\nDefaultInstance=one\n") == {
        f"{D}/multi-user.target.wants/t@one.service": f"{D}/t@.service"
    }
    assert enablement_links("a.service", "[Unit]\nDescription=no install\n") == {}
