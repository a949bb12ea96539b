"""users: one user account per instance, with a password from vars (Clan's `users`).

The user defaults to the instance name (Clan: `extendSettings { user = mkOptionDefault
instanceName; }`). Its password lives in the generator `user-password-<user>`: either the answer
to a hidden, persisted prompt (empty → generated) or, with `prompt = false`, a random one. The
host gets only the SHA-512 crypt hash (`user-password-hash`, needed for `users`); the clear
password is never deployed (`pyclan vars get <machine> user-password-<user>/user-password`).

`openssh.authorizedKeys.keys` / `.keyFiles` go to `/etc/ssh/authorized_keys.d/<user>`, which sshd
reads besides the user's own `~/.ssh/authorized_keys` (as on NixOS). `identity` exports the user to
identity providers (`auth` export), also for `systemUser = false` users that get no account.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pyclan.errors import ClanError
from pyclan.services import (
    Generator,
    GeneratorInput,
    InstanceContext,
    MachineConfig,
    Prompt,
    Service,
    VarFile,
    mk_default,
)
from pyclan.services.exports import ExportMap
from pyclan.services.library._common import (
    USER_AUTHORIZED_KEYS_DIR,
    authorized_keys_config,
    random_password,
    sha512_crypt,
)

# useradd's rule on Debian (NAME_REGEX without the trailing `$` for Samba machine accounts).
UserName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]*$", max_length=32)]
GroupName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]*$", max_length=32)]
SingleLine = Annotated[str, StringConstraints(pattern=r"^[^\n\r]*$")]  # Clan's singleLineStr

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
        "`user-password-<user>` (prompted, or random with `prompt = false`); hosts get only its hash. "
        "`identity` exports the user to identity providers (`auth`)."
    ),
    categories=["System"],
    exports_out=["auth"],
)


class AuthorizedKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[SingleLine] = Field(
        default=[],
        description="Verbatim OpenSSH public keys allowed to log in as the user (read besides ~/.ssh/authorized_keys)",
        examples=[["ssh-ed25519 AAAAC3NzaCetcetera/etceteraJZMfk3QPfQ foo@bar"]],
    )
    keyFiles: list[str] = Field(
        default=[],
        description=(
            "Files each holding one OpenSSH public key, read when the configuration is built; paths are "
            "relative to the clan directory and must stay inside it"
        ),
        examples=[["keys/alice.pub"]],
    )


class OpenSSH(BaseModel):
    model_config = ConfigDict(extra="forbid")

    authorizedKeys: AuthorizedKeys = Field(default=AuthorizedKeys(), description="The user's SSH keys")


class Identity(BaseModel):
    """One account in an identity provider (IdP) instance."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(default="", description="Email for this IdP account; default: <user>@mail.<meta.domain>")
    groups: list[str] = Field(default=[], description="IdP-level groups (OIDC access policies)")
    displayname: str | None = Field(default=None, description="Display name; default: the user name")


class User(BaseModel):
    """Settings of the `default` role."""

    model_config = ConfigDict(extra="forbid")

    user: UserName | None = Field(
        default=None,
        description="The username for this account; defaults to the instance name",
        examples=["alice"],
    )
    systemUser: bool = Field(
        default=True,
        description=(
            "Whether to create a Unix account; false: an identity-only user (exported through `identity`) "
            "with no account and no password on any machine"
        ),
    )
    prompt: bool = Field(
        default=True,
        description=(
            "Ask for the password when vars are generated (empty answer: generate one); "
            "false: always generate a random password"
        ),
    )
    groups: list[GroupName] = Field(
        default=[],
        description=(
            "Additional groups; they must exist on the machine. NixOS names are translated: "
            "wheel → sudo, networkmanager → netdev"
        ),
        examples=[["wheel", "networkmanager", "video", "input"]],
    )
    share: bool = Field(default=False, description="Use the same password on every machine (a shared generator)")
    identity: dict[str, Identity] = Field(
        default={},
        description="IdP accounts by IdP instance name, exported as `auth.users` for identity provider services",
        examples=[{"main": {"email": "alice@example.com", "groups": ["admins", "users"]}}],
    )
    openssh: OpenSSH = Field(default=OpenSSH(), description="OpenSSH settings of the user")
    # pyclan additions
    regularUser: bool | None = Field(
        default=None,
        description="A normal login user with a home directory; default: true unless the user is root (pyclan)",
    )
    shell: str | None = Field(
        default=None,
        description=f"Login shell; default: {DEFAULT_SHELL} for regular users, unchanged for others (pyclan)",
    )
    authorizedKeys: list[SingleLine] = Field(
        default=[],
        description="More OpenSSH public keys (pyclan shorthand; adds to openssh.authorizedKeys.keys)",
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


def _settings_path(ctx: InstanceContext[Any]) -> str:
    return f"instances.{ctx.instance_name}.roles.{ctx.role_name}.machines.{ctx.machine.name}.settings"


def _key_file(clan_dir: Path | None, name: str, where: str) -> str:
    """The key in `name`, a file inside the clan (never a symlink that leads out of it)."""
    if clan_dir is None:
        raise ClanError.single("settings-type", where, "key files cannot be read here (no clan directory)")
    root = clan_dir.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root):
        raise ClanError.single(
            "settings-type", where, f"key file {name!r} lies outside the clan directory",
            hint="copy the .pub file into the clan (e.g. keys/alice.pub) and give its relative path",
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise ClanError.single(
            "settings-type", where, f"cannot read key file {name!r}: {err.__class__.__name__}",
            hint="give the path of a public key file relative to the clan directory",
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1:
        raise ClanError.single(
            "settings-type", where, f"key file {name!r} holds {len(lines)} keys, expected one",
            hint="put each key in its own file, or list keys verbatim in openssh.authorizedKeys.keys",
        )
    return lines[0]


def authorized_keys(ctx: InstanceContext[User], settings: User) -> list[str]:
    """`keys`, then the contents of `keyFiles`, then the pyclan shorthand; without duplicates."""
    where = f"{_settings_path(ctx)}.openssh.authorizedKeys.keyFiles"
    clan_dir = getattr(ctx.vars, "clan_dir", None)  # the evaluator's vars view knows the clan
    from_files = [_key_file(clan_dir, name, where) for name in settings.openssh.authorizedKeys.keyFiles]
    keys = [*settings.openssh.authorizedKeys.keys, *from_files, *settings.authorizedKeys]
    return list(dict.fromkeys(k.strip() for k in keys if k.strip()))


@service.role("default", interface=User, description="Machines that get the user account")
def default(ctx: InstanceContext[User]) -> MachineConfig | None:
    settings = effective(ctx)
    user = _user_of(settings, ctx)
    if not settings.systemUser:
        return None
    regular = settings.regularUser if settings.regularUser is not None else user != "root"
    keys = authorized_keys(ctx, settings)
    fields: dict[str, Any] = {
        "groups": [DEBIAN_GROUPS.get(g, g) for g in settings.groups],
        "hashed_password_file": ctx.vars.secret_path(generator_name(user), "user-password-hash"),
        "create_home": regular,
    }
    shell = settings.shell or (DEFAULT_SHELL if regular else None)
    if shell is not None:
        fields["shell"] = shell
    cfg = authorized_keys_config(f"{USER_AUTHORIZED_KEYS_DIR}/{user}", keys) if keys else MachineConfig()
    return cfg.user(user, **fields).state(f"home-{user}", [f"/home/{user}"]) if regular else cfg.user(user, **fields)


@default.exports
def identity_exports(ctx: InstanceContext[User]) -> ExportMap:
    """Clan's `auth.users`: one account per IdP instance named in `identity`."""
    settings = effective(ctx)
    if not settings.identity:
        return {}
    user = _user_of(settings, ctx)
    domain = str(ctx.meta.get("domain") or "clan")
    users = {
        idp: {
            "username": user,
            "email": ident.email or f"{user}@mail.{domain}",
            "groups": list(ident.groups),
            "displayname": ident.displayname if ident.displayname is not None else user,
        }
        for idp, ident in sorted(settings.identity.items())
    }
    return ctx.mk_exports({"auth": {"users": users}})


@default.generators
def password_generator(ctx: InstanceContext[User]) -> list[Generator]:
    settings = effective(ctx)
    user = _user_of(settings, ctx)
    if not settings.systemUser:
        return []
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
