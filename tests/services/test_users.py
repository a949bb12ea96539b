"""users: accounts, the password generator (prompted or random), and the hash on a real system."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pyclan.clan import Clan
from pyclan.config.generators import GeneratorInput
from pyclan.errors import ClanError
from pyclan.services.library._common import sha512_crypt
from pyclan.services.library.users import PasswordRun

MakeClan = Callable[..., Clan]
Isolated = Callable[..., subprocess.CompletedProcess[str]]

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHEnxyIs+FUNZGzSMqj2ZIuSSnJgdV0Cmdvvm4ftSc7m alice@laptop"

CLAN = """
[meta]
name = "u"
[machines.laptop]
tags = ["desk"]
[machines.server]
[instances.alice]
module.name = "users"
roles.default.machines.laptop = {}
roles.default.settings = { groups = ["wheel", "video"], openssh.authorizedKeys.keys = ["KEY"] }
[instances.users-root]
module.name = "users"
roles.default.tags = ["all"]
roles.default.settings = { user = "root", prompt = false }
""".replace("KEY", KEY)


def test_user_defaults_to_the_instance_name(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN)
    cfg = clan.evaluator.config("laptop")
    alice = cfg.users["alice"]
    assert alice.groups == ("sudo", "video")  # NixOS's wheel is Debian's sudo
    # like NixOS: a file sshd reads besides ~/.ssh/authorized_keys (which stays the user's own)
    assert alice.authorized_keys == ()
    assert cfg.files["/etc/ssh/authorized_keys.d/alice"].content.splitlines()[1:] == [KEY]
    assert "/etc/ssh/authorized_keys.d/%u" in cfg.files["/etc/ssh/sshd_config.d/00-clan-authorized-keys.conf"].content
    assert alice.create_home and alice.shell == "/bin/bash"
    assert alice.hashed_password_file == "/var/lib/pyclan/secrets/user-password-alice/user-password-hash"
    root = cfg.users["root"]
    assert not root.create_home and root.shell is None
    secret = cfg.secrets["/var/lib/pyclan/secrets/user-password-alice/user-password-hash"]
    assert (secret.needed_for, secret.mode, secret.owner) == ("users", "0400", "root")
    # the clear-text password is not deployed
    assert not any(s.file == "user-password" for s in cfg.secrets.values())
    # the resolved settings keep `user` unset (the instance name is applied by the service)
    settings = clan.resolved.to_json()["machines"]["laptop"]["instances"]["alice"]["roles"]["default"]["settings"]
    assert settings["user"] is None


def test_a_plain_user_setting_beats_the_instance_name(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN.replace('groups = ["wheel", "video"]', 'user = "bob"'))
    assert set(clan.evaluator.config("laptop").users) == {"bob", "root"}
    assert "user-password-bob" in clan.evaluator.generators()["laptop"]


def test_generators_follow_prompt_and_share(make_clan: MakeClan) -> None:
    clan = make_clan(CLAN.replace("prompt = false }", "prompt = false, share = true }"))
    gens = clan.evaluator.generators()
    alice = gens["laptop"]["user-password-alice"].generator
    assert set(alice.prompts) == {"user-password"}
    prompt = alice.prompts["user-password"]
    assert (prompt.type, prompt.persist) == ("hidden", True)
    assert alice.files["user-password"].deploy is False
    assert alice.files["user-password-hash"].neededFor == "users"
    root = gens["server"]["user-password-root"].generator
    assert root.prompts == {} and root.share is True
    # shared across machines: declared identically on both
    assert gens["laptop"]["user-password-root"].generator == root


def test_password_run_uses_the_answer_or_generates_one() -> None:
    given = PasswordRun()(GeneratorInput(machine="m", dependencies={}, prompts={"user-password": "s3cret pass\n"}))
    assert given["user-password"] == "s3cret pass"
    hashed = str(given["user-password-hash"])
    salt = hashed.split("$")[2]
    assert hashed == sha512_crypt("s3cret pass", salt)
    reference = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input="s3cret pass\n",
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert hashed == reference

    random = PasswordRun()(GeneratorInput(machine="m", dependencies={}, prompts={"user-password": ""}))
    password = str(random["user-password"])
    assert len(password) == 23 and password.count("-") == 3
    other = PasswordRun()(GeneratorInput(machine="m", dependencies={}, prompts={}))
    assert other["user-password"] != password


def test_the_hash_works_with_debians_user_tools(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Isolated, etc_upper: Path
) -> None:
    clan = make_clan(CLAN)
    made = generate_vars(clan, {"user-password-alice": {"user-password": "correct horse"}})
    cfg = clan.evaluator.config("laptop")
    alice = cfg.users["alice"]
    assert alice.hashed_password_file is not None
    script = (
        f"useradd -M -s {alice.shell} -G {','.join(alice.groups)} alice\n"
        f'usermod -p "$(cat {alice.hashed_password_file})" alice\n'
    )
    isolated(script, files=made.host_files("laptop"))
    shadow = (etc_upper / "shadow").read_text()
    entry = next(line for line in shadow.splitlines() if line.startswith("alice:"))
    stored = entry.split(":")[1]
    assert stored.startswith("$6$")
    assert stored == sha512_crypt("correct horse", stored.split("$")[2])
    group = (etc_upper / "group").read_text()
    assert any(line.startswith("sudo:") and line.endswith("alice") for line in group.splitlines())


def test_bad_names_and_keys_are_reported(make_clan: MakeClan) -> None:
    with pytest.raises(ClanError) as err:
        make_clan(CLAN.replace("[instances.alice]", "[instances.Alice]")).evaluator.config("laptop")
    assert err.value.problems[0].kind == "settings-type"
    assert "user" in err.value.problems[0].path

    clan = make_clan(CLAN.replace(KEY, "ssh-ed25519 AAAA\\nssh-rsa BBBB"), name="badkey")
    with pytest.raises(ClanError) as err:
        clan.evaluator.config("laptop")
    problem = err.value.problems[0]
    assert problem.path.startswith("instances.alice.roles.default.machines.laptop.settings.openssh.authorizedKeys.keys")
    assert problem.kind == "settings-type"


def test_key_files_are_read_from_inside_the_clan_only(make_clan: MakeClan, tmp_path: Path) -> None:
    clan = make_clan(CLAN.replace('openssh.authorizedKeys.keys = ["KEY"]'.replace("KEY", KEY),
                                  'openssh.authorizedKeys.keyFiles = ["keys/alice.pub"]'))
    (clan.dir / "keys").mkdir()
    (clan.dir / "keys/alice.pub").write_text(f"# alice's laptop\n{KEY}\n")
    cfg = clan.evaluator.config("laptop")
    assert cfg.files["/etc/ssh/authorized_keys.d/alice"].content.splitlines()[1:] == [KEY]

    (tmp_path / "outside.pub").write_text(KEY + "\n")
    (clan.dir / "keys/alice.pub").unlink()
    (clan.dir / "keys/alice.pub").symlink_to(tmp_path / "outside.pub")
    with pytest.raises(ClanError) as err:
        make_clan(clan.dir.joinpath("clan.toml").read_text()).evaluator.config("laptop")
    problem = err.value.problems[0]
    assert problem.path.endswith("settings.openssh.authorizedKeys.keyFiles")
    assert "outside the clan directory" in problem.message


def test_identity_only_users_get_no_account_but_are_exported(make_clan: MakeClan) -> None:
    """Clan's `systemUser = false` + `identity`: no account or password anywhere; `auth.users` for the IdP."""
    clan = make_clan(CLAN + """
[instances.carol]
module.name = "users"
roles.default.machines.server = {}
roles.default.settings = { systemUser = false, identity.main = { groups = ["admins"] } }
""")
    assert "carol" not in clan.evaluator.config("server").users
    assert "user-password-carol" not in clan.evaluator.generators().get("server", {})
    exports = clan.evaluator.exports()
    assert exports["users:carol:default:server"]["auth"]["users"] == {
        "main": {"username": "carol", "email": "carol@mail.clan", "groups": ["admins"], "displayname": "carol"}
    }


def test_keys_of_users_and_sshd_for_root_go_to_two_files_without_conflict(
    make_clan: MakeClan, isolated: Isolated
) -> None:
    """users and sshd both give root keys: each its own file, one shared sshd drop-in (defined identically)."""
    other = KEY.replace("alice@laptop", "ops@desk")
    clan = make_clan(CLAN.replace("{ user = \"root\", prompt = false }",
                                  f'{{ user = "root", prompt = false, openssh.authorizedKeys.keys = ["{KEY}"] }}')
                     + f'[instances.sshd]\nroles.server.machines.server.settings.authorizedKeys.ops = "{other}"\n')
    cfg = clan.evaluator.config("server")
    assert cfg.files["/etc/ssh/authorized_keys.d/root"].content.splitlines()[1:] == [KEY]
    assert cfg.files["/etc/ssh/authorized_keys.sshd.d/root"].content.splitlines()[1:] == [other]
    hook = cfg.hooks["sshd-authorized-keys"].script
    files = {"/etc/ssh/sshd_config.d/00-clan-authorized-keys.conf":
             cfg.files["/etc/ssh/sshd_config.d/00-clan-authorized-keys.conf"].content.encode()}
    done = isolated(f"{hook}\n{hook}\ncat /var/lib/pyclan/hook-state/sshd-authorized-keys\n", files=files)
    assert len(done.stdout.split()) == 1 and len(done.stdout.strip()) == 64  # idempotent, no systemd needed
