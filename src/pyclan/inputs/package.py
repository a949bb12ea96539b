"""Inputs that are installed Python distributions: service modules via entry points.

A distribution provides services by the entry-point group `pyclan.services`; the entry point's
name is the module name (`_` and `-` interchangeable) and its value is either `pkg.mod:service`
(a `Service` object) or `pkg.mod` (a module defining `service`). In `pyproject.toml`:

    [project.entry-points."pyclan.services"]
    mod-A = "libfoo_services.mod_a:service"

Only the named distribution's entry points count, so two installed libraries cannot shadow
each other's services.
"""

from __future__ import annotations

import importlib.metadata as md
from types import ModuleType

from pyclan.errors import ClanError
from pyclan.services.registry import ServiceProvider, checked_service, load_error
from pyclan.services.service import Service

ENTRY_POINT_GROUP = "pyclan.services"


def installed_version(package: str) -> str | None:
    """The installed version of distribution `package`, or None if it is not installed."""
    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return None


def not_installed(name: str, package: str) -> ClanError:
    return ClanError.single(
        "input-error",
        f"inputs.{name}.package",
        f"input '{name}': the Python distribution '{package}' is not installed",
        hint=f"install it into the environment that runs pyclan (e.g. `pip install {package}`)",
    )


class PackageProvider(ServiceProvider):
    """Service modules published by an installed distribution (entry-point group `pyclan.services`)."""

    def __init__(self, label: str, package: str) -> None:
        self.label = label
        self.package = package
        self._cache: dict[str, Service] = {}

    def _distribution(self) -> md.Distribution:
        try:
            return md.distribution(self.package)
        except md.PackageNotFoundError:
            raise not_installed(self.label, self.package) from None

    def _entry_points(self) -> dict[str, md.EntryPoint]:
        found: dict[str, md.EntryPoint] = {}
        for ep in self._distribution().entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                found[ep.name.replace("_", "-")] = ep
        return found

    @property
    def version(self) -> str:
        return self._distribution().version

    def names(self) -> list[str]:
        return sorted(self._entry_points())

    def origin(self, name: str) -> str:
        ep = self._entry_points().get(name)
        where = f"{self.package}=={self.version}"
        return f"{where} ({ep.value})" if ep else where

    def load(self, name: str) -> Service:
        if name in self._cache:
            return self._cache[name]
        ep = self._entry_points().get(name)
        if ep is None:
            raise KeyError(name)
        where = f"{self.package} entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
        except Exception as exc:  # third-party code may raise anything while importing
            raise load_error(where, exc) from None
        if isinstance(obj, ModuleType):
            obj = getattr(obj, "service", None)
        obj = checked_service(
            obj, where, "the entry point must name a `Service` object (`module:service`) or a module defining `service`"
        )
        self._cache[name] = obj
        return obj



__all__ = ["ENTRY_POINT_GROUP", "PackageProvider", "installed_version", "not_installed"]
