"""emergency-access: a root password for the console when the machine fails to boot (Clan's service).

Clan sets the password of the initrd's emergency shell. Debian's initramfs has no such password:
when booting fails, systemd's emergency and rescue shells run `sulogin`, which asks for root's
password (and refuses outright while root is locked, as on a fresh cloud image). So on Debian the
meaningful equivalent is root's password, from the generator `emergency-access`: a random
password (secret, never deployed; read it with `pyclan vars get <m> emergency-access/password`)
and its crypt(3) hash, which is public as in Clan. Debian's sshd refuses passwords for root
(`PermitRootLogin prohibit-password`), so the password works on the console and for `su` only.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyclan.services import Generator, GeneratorInput, InstanceContext, MachineConfig, NoSettings, Service, VarFile
from pyclan.services.library._common import random_password, sha512_crypt

GENERATOR = "emergency-access"
HASH_FILE = "/etc/pyclan/emergency-access/password-hash"

service = Service(
    "emergency-access",
    description="Set recovery password for emergency access to machine to debug boot issues",
    readme=(
        "root gets a generated password (generator `emergency-access`), which systemd's emergency and rescue "
        "shells (sulogin) ask for on the console when booting fails."
    ),
    categories=["System"],
)


@dataclass(frozen=True)
class EmergencyPasswordRun:
    """A random password (six groups, like Clan's six words) and its SHA-512 crypt hash."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        password = random_password(groups=6)
        return {"password": password, "password-hash": sha512_crypt(password)}


@service.role("default", description="Placeholder role to apply the emergency-access service")
def default(ctx: InstanceContext[NoSettings]) -> MachineConfig | None:
    if not ctx.vars.has(GENERATOR, "password-hash"):
        return None  # nothing to set before `pyclan vars generate`
    return (
        MachineConfig()
        .file(HASH_FILE, ctx.vars.public(GENERATOR, "password-hash").strip() + "\n", mode="0600")
        .user("root", hashed_password_file=HASH_FILE, create_home=False)
    )


@default.generators
def emergency_generators(ctx: InstanceContext[NoSettings]) -> list[Generator]:
    return [
        Generator(
            name=GENERATOR,
            files={"password": VarFile(secret=True, deploy=False), "password-hash": VarFile(secret=False)},
            run=EmergencyPasswordRun(),
        )
    ]
