"""API of the service modules a clan can use: list them, show one with its settings schemas."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyclan.api import register
from pyclan.api.common import open_flake
from pyclan.errors import ClanError


@dataclass(frozen=True)
class ServiceSummary:
    """A service module, the input providing it (None: bundled) and where it was found."""

    name: str
    origin: str
    description: str
    roles: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    input: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RoleDetails:
    """A role's description and the JSON Schema of its settings."""

    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ServiceDetails:
    """A service's manifest, its roles, and whether it has a perMachine function."""

    name: str
    manifest: dict[str, Any]
    roles: dict[str, RoleDetails]
    perMachine: bool
    input: str | None = None


@register
def list_service_modules(
    flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> list[ServiceSummary]:
    """Every service module this clan can use, and where it comes from."""
    clan = open_flake(flake, input_overrides)
    out = []
    for entry in clan.registry.entries():
        try:
            service = clan.registry.resolve(entry.name, entry.input, f"services.{entry.name}")
        except ClanError as err:
            message = err.problems[0].message
            out.append(
                ServiceSummary(
                    entry.name, entry.origin, f"(fails to load: {message})", input=entry.input, error=message
                )
            )
            continue
        out.append(
            ServiceSummary(
                name=entry.name,
                origin=entry.origin,
                description=service.description,
                roles=sorted(service.roles),
                categories=list(service.categories),
                input=entry.input,
            )
        )
    return out


@register
def get_service_module(
    name: str, input: str | None = None, flake: str | None = None, input_overrides: dict[str, str] | None = None
) -> ServiceDetails:
    """Manifest, roles, descriptions and each role's settings JSON Schema."""
    from pyclan.settings.merge import settings_schema

    clan = open_flake(flake, input_overrides)
    service = clan.registry.resolve(name, input, f"services.{name}")
    return ServiceDetails(
        name=name,
        input=input,
        manifest=service.manifest_json(),
        roles={
            r: RoleDetails(role.description or "", settings_schema(role.interface))
            for r, role in sorted(service.roles.items())
        },
        perMachine=service.per_machine_fn is not None,
    )
