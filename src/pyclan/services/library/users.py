"""users: one user account per instance, with a password from vars (Clan's `users`).

The user defaults to the instance name (Clan: `extendSettings { user = mkOptionDefault
instanceName; }`). Its password lives in the generator `user-password-<user>`: either the answer
to a hidden, persisted prompt (empty → generated) or, with `prompt = false`, a random one. The
host gets only the SHA-512 crypt hash (`user-password-hash`, needed for `users`); the clear
password is never deployed (`pyclan vars get <machine> user-password-<user>/user-password`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pyclan.config.machine_config import MachineConfig
from pyclan.errors import ClanError
from pyclan.evaluate.overrides import mk_default
from pyclan.services.api import InstanceContext, Service
from pyclan.services.library._common import is_openssh_public_key, random_password, sha512_crypt
from pyclan.vars.model import Generator, GeneratorInput, Prompt, VarFile

# useradd's rule on Debian (NAME_REGEX without the trailing `$` for Samba machine accounts).
UserName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]*$", max_length=32)]
GroupName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]*$", max_length=32)]
PublicKey = Annotated[str, StringConstraints(pattern=r"^[^\n\r]+$")]

# NixOS group names that Clan inventories use, and their Debian equivalents.
DEBIAN_GROUPS = {"wheel": "sudo", "networkmanager": "netdev"}

DEFAULT_SHELL = "/bin/bash"  # NixOS's default for normal users; Debian's useradd would use /bin/sh

service = Service(
    "users",
    description=(
        "An instance of this module will create a user account on the added machines, along with a "
        "generated password that is constant across machines and user settings."
    ),
    readme=(
        "Creates the user on every member. The password comes from the vars generator "
        "`user-password-<user>` (prompted, or random with `prompt = false`); hosts get only its hash."
    ),
    categories=["System"],
)


class OpenSSH(BaseModel):
    model_config = ConfigDict(extra="forbid")

    authorizedKeys: list[PublicKey] = Field(
        default_factory=list, description="Verbatim OpenSSH public keys allowed to log in as the user"
    )


class User(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    user: UserName | None = Field(
        default=None,
        description="The user to create and generate the password for; defaults to the instance name",
        examples=["alice"],
    )
    prompt: bool = Field(
        default=True,
        description=(
            "Ask for the password when vars are generated (empty answer: generate one); "
            "false: always generate a random password"
        ),
    )
    groups: list[GroupName] = Field(
        default_factory=list,
        description=(
            "Supplementary groups; they must exist on the machine. NixOS names are translated: "
            "wheel → sudo, networkmanager → netdev"
        ),
        examples=[["sudo", "video", "input"]],
    )
    share: bool = Field(default=False, description="Use the same password on every machine (a shared generator)")
    regularUser: bool | None = Field(
        default=None,
        description="A normal login user with a home directory; default: true unless the user is root",
    )
    shell: str | None = Field(
        default=None, description=f"Login shell; default: {DEFAULT_SHELL} for regular users, unchanged for others"
    )
    openssh: OpenSSH = Field(default_factory=OpenSSH, description="OpenSSH settings of the user (Clan's option)")
    authorizedKeys: list[PublicKey] = Field(
        default_factory=list,
        description="OpenSSH public keys allowed to log in (pyclan shorthand; adds to openssh.authorizedKeys)",
    )


def generator_name(user: str) -> str:
    return f"user-password-{user}"


@dataclass(frozen=True)
class PasswordRun:
    """The prompted password, or a random one if the prompt is off or left empty; plus its hash."""

    def __call__(self, inp: GeneratorInput) -> dict[str, bytes | str]:
        password = inp.prompts.get("user-password", "").replace("\n", "")
        if not password:
            password = random_password()
        return {"user-password": password, "user-password-hash": sha512_crypt(password)}


def effective(ctx: InstanceContext[User]) -> User:
    """The settings with `user` defaulting to the instance name.

    Clan uses `mkOptionDefault instanceName`; pyclan's interface default (null) already sits at
    that priority, so the fallback is given at mkDefault priority: any plain definition still wins.
    """
    try:
        return ctx.extend_settings({"user": mk_default(ctx.instance_name)})
    except ClanError as err:
        problems = [
            replace(p, hint=f"the user name defaults to the instance name '{ctx.instance_name}', which is not a "
                    f"valid user name; set `user` (e.g. user = \"{ctx.instance_name.lower()}\")")
            if p.path.endswith(".settings.user") and "extendSettings" in p.message else p
            for p in err.problems
        ]
        raise ClanError(problems) from None


def _user_of(settings: User, ctx: InstanceContext[Any]) -> str:
    if settings.user is None:  # only if someone defined `user = null` explicitly
        raise ClanError.single(
            "missing-setting",
            f"instances.{ctx.instance_name}.roles.{ctx.role_name}.machines.{ctx.machine.name}.settings.user",
            "no user name: `user` is null",
            hint="set `user` to the account name, or remove the null definition to use the instance name",
        )
    return settings.user


@service.role("default", interface=User, description="Machines that get the user account")
def default(ctx: InstanceContext[User]) -> MachineConfig:
    settings = effective(ctx)
    user = _user_of(settings, ctx)
    regular = settings.regularUser if settings.regularUser is not None else user != "root"
    keys = list(dict.fromkeys([*settings.openssh.authorizedKeys, *settings.authorizedKeys]))
    base = f"instances.{ctx.instance_name}.roles.{ctx.role_name}.machines.{ctx.machine.name}.settings"
    for key in keys:
        if not is_openssh_public_key(key):
            raise ClanError.single(
                "settings-type", f"{base}.authorizedKeys",
                f"not an OpenSSH public key: {key[:60]!r}",
                hint="use the single line from a .pub file, e.g. 'ssh-ed25519 AAAA… user@host'",
            )
    fields: dict[str, Any] = {
        "groups": [DEBIAN_GROUPS.get(g, g) for g in settings.groups],
        "authorized_keys": keys,
        "hashed_password_file": ctx.vars.secret_path(generator_name(user), "user-password-hash"),
        "create_home": regular,
    }
    shell = settings.shell or (DEFAULT_SHELL if regular else None)
    if shell is not None:
        fields["shell"] = shell
    return MachineConfig().user(user, **fields)


@default.generators
def password_generator(ctx: InstanceContext[User]) -> list[Generator]:
    settings = effective(ctx)
    user = _user_of(settings, ctx)
    prompts = (
        {"user-password": Prompt(description="Leave empty to generate automatically", type="hidden", persist=True)}
        if settings.prompt
        else {}
    )
    return [
        Generator(
            name=generator_name(user),
            files={
                "user-password-hash": VarFile(secret=True, neededFor="users"),
                "user-password": VarFile(secret=True, deploy=False),
            },
            prompts=prompts,
            share=settings.share,
            run=PasswordRun(),
        )
    ]
