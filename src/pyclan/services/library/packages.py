"""packages: install software on machines (Clan's `packages`, with Debian package names).

Clan's service takes nixpkgs attribute names; on Debian hosts the names are apt package names
(`ripgrep`, `fd-find`, `bat`, ...). Lists from role, machine and tag settings concatenate, so a
tag can add packages to what the role gives everyone.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pyclan.services import InstanceContext, MachineConfig, Service

# Debian policy §5.6.1: lower case letters, digits, + - . ; at least two characters.
DebianPackage = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9+.-]+$")]

service = Service(
    "packages",
    description="Install software packages on machines",
    readme="Installs the listed Debian packages with apt on every member.",
    categories=["System"],
)


class Packages(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    packages: list[DebianPackage] = Field(
        default=[],
        description="Debian (apt) package names to install, e.g. [\"htop\", \"ripgrep\"]",
        examples=[["htop", "ripgrep"]],
    )


@service.role("default", interface=Packages, description="Machines that get the packages installed")
def default(ctx: InstanceContext[Packages]) -> MachineConfig:
    return MachineConfig().package(*ctx.settings.packages)
