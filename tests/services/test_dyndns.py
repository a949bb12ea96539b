"""dyndns: Clan's settings and prompted secrets, rendered for ddclient; real ddclient updates a dyndns2 endpoint."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from catalogue_support import check_and_build, example_clan

from pyclan.clan import Clan
from pyclan.errors import ClanError
from pyclan.services.library.dyndns import (
    CONFIG,
    PORKBUN_LIST,
    PORKBUN_SCRIPT,
    PORKBUN_TIMER,
    PORKBUN_UNIT,
    TEMPLATE,
    UNIT,
    porkbun_script,
)
from pyclan.vars.view import secret_host_path

MakeClan = Callable[..., Clan]
ENDPOINT = Path(__file__).parent / "dyndns_endpoint.py"
SECRET = "dyndns-dyn-example.com"

CLAN = """
[meta]
name = "ddns"
[machines.home]
[instances.dyndns]
roles.default.machines.home = {}
roles.default.settings.period = 1
roles.default.settings.interface = "dyn0"
[instances.dyndns.roles.default.settings.settings.home]
provider = "dyn"
domain = "example.com"
extraSettings = { host = "@,nas", username = "alice", server = "http://127.0.0.1:18080" }
"""
PORKBUN_SECRET = "dyndns-porkbun-example.net"
PORKBUN_CLAN = """
[meta]
name = "ddns"
[machines.home]
[instances.dyndns]
roles.default.machines.home = {}
roles.default.settings.period = 1
roles.default.settings.interface = "dyn0"
[instances.dyndns.roles.default.settings.settings.pb]
provider = "porkbun"
domain = "example.net"
secret_field_name = "secret_api_key"
extraSettings = { host = "@,nas", api_key = "pk1_public", ttl = 600, server = "@SERVER@" }
"""


def test_clans_readme_example_checks_and_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = "dyndns-namecheap-jon.blog"
    built = check_and_build(example_clan("dyndns", tmp_path, monkeypatch), {gen: {gen: "namecheap-ddns-password"}})
    generator = built.clan.evaluator.generators()["jon"][gen].generator
    assert generator.share and generator.files[gen].secret
    assert generator.prompts[gen].type == "hidden" and generator.prompts[gen].persist
    manifest = built.generations["jon"].manifest
    assert "ddclient" in manifest.packages and UNIT in manifest.units
    assert secret_host_path(gen, gen) in manifest.secrets
    template = built.generations["jon"].objects[manifest.files[TEMPLATE].sha256].decode()
    assert "namecheap-ddns-password" not in template  # the secret is only filled in on the host
    entry = template.split("# all-jon-blog: namecheap jon.blog\n", 1)[1]
    assert entry == ("protocol=namecheap, \\\nlogin=jon.blog, \\\nuse=web, \\\nweb=ipify-ipv4, \\\n"
                     f"@pyclan-secret {secret_host_path(gen, gen)}\n@,home,test\n")
    assert "daemon=900\n" in template and "ssl=yes\n" in template  # period 15 minutes; TLS by default
    assert [(c.name, c.kind, c.target) for c in manifest.checks] == [("dyndns-running", "unit", UNIT)]


def test_clans_porkbun_example_checks_and_builds_with_pyclans_own_updater(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gen, secret = "dyndns-porkbun-jon.blog", "sk1_porkbun-secret-key"
    built = check_and_build(example_clan("dyndns-porkbun", tmp_path, monkeypatch), {gen: {gen: secret}})
    generator = built.clan.evaluator.generators()["jon"][gen].generator
    assert generator.share and generator.prompts[gen].type == "hidden" and generator.prompts[gen].persist
    generation = built.generations["jon"]
    manifest = generation.manifest
    assert "curl" in manifest.packages and "ddclient" not in manifest.packages
    assert sorted(manifest.units) == [PORKBUN_UNIT, PORKBUN_TIMER] and TEMPLATE not in manifest.files
    assert [(c.name, c.target) for c in manifest.checks] == [("dyndns-porkbun-timer", PORKBUN_TIMER)]
    assert secret_host_path(gen, gen) in manifest.secrets
    records = generation.objects[manifest.files[PORKBUN_LIST].sha256].decode().splitlines()[2:]
    assert records == [f"https://api.porkbun.com jon.blog A {name} pk1_public-example-key {gen} - "
                       "url:https://api.ipify.org" for name in ("@", "home", "test")]
    assert all(secret.encode() not in blob for blob in generation.objects.values())  # only the host has it
    assert generation.objects[manifest.files[PORKBUN_SCRIPT].sha256].decode() == porkbun_script()


def test_porkbun_units_pass_the_key_as_a_credential_and_run_every_period(make_clan: MakeClan) -> None:
    clan = make_clan(PORKBUN_CLAN.replace("@SERVER@", "http://127.0.0.1:18081"))
    cfg = clan.evaluator.config("home")
    unit = cfg.units[PORKBUN_UNIT].content
    secret = secret_host_path(PORKBUN_SECRET, PORKBUN_SECRET)
    assert f"LoadCredential={PORKBUN_SECRET}:{secret}\n" in unit
    assert f"ExecStart=/bin/sh {PORKBUN_SCRIPT} {PORKBUN_LIST}\n" in unit  # no key on the command line
    assert "User=dyndns\n" in unit and "Type=oneshot\n" in unit
    timer = cfg.units[PORKBUN_TIMER].content
    assert "OnUnitActiveSec=1min\n" in timer and "OnActiveSec=0\n" in timer
    assert not cfg.units[PORKBUN_UNIT].start and cfg.units[PORKBUN_TIMER].start
    assert cfg.files[PORKBUN_LIST].content.splitlines()[2:] == [
        f"http://127.0.0.1:18081 example.net {kind} {name} pk1_public {PORKBUN_SECRET} 600 if:dyn0"
        for kind, name in (("A", "@"), ("A", "nas"))]  # fmt: skip
    assert cfg.files[PORKBUN_SCRIPT].mode == "0755" and cfg.files[PORKBUN_LIST].mode == "0644"


def test_porkbun_updater_is_shellcheck_clean() -> None:
    done = subprocess.run(["shellcheck", "--shell=sh", "-"], input=porkbun_script(), text=True,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("settings", "path", "words"), [
    ('{ provider = "namecheep", domain = "a.org" }', "settings.x.provider", "did you mean 'namecheap'"),
    ('{ provider = "namecheap", domain = "a.org", extraSettings.password = "x" }',
     "settings.x.extraSettings.password", "must not be set in extraSettings"),
    ('{ provider = "namecheap", domain = "a.org", extraSettings.proxied = true }',
     "settings.x.extraSettings.proxied", "has no meaning for ddclient"),
    ('{ provider = "dyn", domain = "a.org" }', "settings.x.extraSettings", "needs extraSettings.username"),
    ('{ provider = "namecheap", domain = "a.org", extraSettings.ip_version = "ipv4 or ipv6" }',
     "settings.x.extraSettings.ip_version", "one address per record"),
    ('{ provider = "namecheap", domain = "a.org", extraSettings.host = "a b" }',
     "settings.x.extraSettings.host", "is not a record name"),
    ('{ provider = "namecheap", domain = "a.org", extraSettings.server = "x; rm -rf /" }',
     "settings.x.extraSettings.server", "is not a server name"),
    ('{ provider = "porkbun", domain = "a.org", extraSettings.api_key = "pk1_x" }',
     "settings.x.secret_field_name", 'secret_field_name = "secret_api_key"'),
    ('{ provider = "porkbun", domain = "a.org", secret_field_name = "api_key", extraSettings.secret_api_key = "s" }',
     "settings.x.secret_field_name", "must not be written in the inventory"),
    ('{ provider = "porkbun", domain = "a.org", secret_field_name = "secret_api_key" }',
     "settings.x.extraSettings", "needs extraSettings.api_key"),
    ('{ provider = "porkbun", domain = "a.org", secret_field_name = "secret_api_key", '
     'extraSettings = { api_key = "pk1 x" } }', "settings.x.extraSettings.api_key", "is not a Porkbun API key"),
    ('{ provider = "porkbun", domain = "a.org", secret_field_name = "secret_api_key", '
     'extraSettings = { api_key = "pk1", username = "jon" } }', "settings.x.extraSettings.username",
     "has no meaning for porkbun"),
    ('{ provider = "porkbum", domain = "a.org" }', "settings.x.provider", "did you mean 'porkbun'"),
])  # fmt: skip
def test_bad_settings_name_the_setting(make_clan: MakeClan, settings: str, path: str, words: str) -> None:
    clan = make_clan(f"[meta]\nname = \"d\"\n[machines.m]\n[instances.dyndns]\nroles.default.machines.m = {{}}\n"
                     f"roles.default.settings.settings.x = {settings}\n")
    with pytest.raises(ClanError) as err:
        clan.evaluator.config("m")
    [problem] = err.value.problems
    assert problem.path == f"instances.dyndns.roles.default.machines.m.settings.{path}", problem
    assert words in problem.message + (problem.hint or ""), problem


def test_a_setting_name_cannot_add_lines_to_the_config(make_clan: MakeClan) -> None:
    clan = make_clan('[meta]\nname = "d"\n[machines.m]\n[instances.dyndns]\nroles.default.machines.m = {}\n'
                     '[instances.dyndns.roles.default.settings.settings."x\\nserver=evil.example"]\n'
                     'provider = "namecheap"\ndomain = "a.org"\n')
    with pytest.raises(ClanError, match="must be a single line"):
        clan.evaluator.config("m")


def test_web_server_is_refused_and_no_settings_means_no_daemon(make_clan: MakeClan) -> None:
    base = "[meta]\nname = \"d\"\n[machines.m]\n[instances.dyndns]\nroles.default.machines.m = {}\n"
    assert make_clan(base, name="empty").evaluator.config("m").units == {}
    clan = make_clan(base + 'roles.default.settings.server = { enable = true, domain = "d.org", acmeEmail = "a@b" }\n')
    with pytest.raises(ClanError, match=r"ddclient .* has no web UI"):
        clan.evaluator.config("m")


def test_providers_map_to_ddclient_protocols(make_clan: MakeClan) -> None:
    clan = make_clan("""
        [meta]
        name = "d"
        [machines.m]
        [instances.dyndns]
        roles.default.machines.m = {}
        roles.default.settings.ipUrl = "http://10.0.0.1/ip"
        [instances.dyndns.roles.default.settings.settings.cf]
        provider = "cloudflare"
        domain = "a.org"
        secret_field_name = "token"
        extraSettings = { host = "@,www", ttl = 300, ip_version = "ipv6" }
        [instances.dyndns.roles.default.settings.settings.duck]
        provider = "duckdns"
        domain = "duckdns.org"
        secret_field_name = "token"
        extraSettings = { host = "myhome" }
    """)
    cfg = clan.evaluator.config("m")
    template = cfg.files[TEMPLATE].content
    cf = template.split("# cf: cloudflare a.org\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert cf[:4] == ["protocol=cloudflare, \\", "login=token, \\", "zone=a.org, \\", "ttl=300, \\"]
    assert cf[4:6] == ["use=web, \\", "web=http://10.0.0.1/ip, \\"]
    assert cf[-1] == "a.org,www.a.org"
    duck = template.split("# duck: duckdns duckdns.org\n", 1)[1].splitlines()
    assert duck[0] == "protocol=duckdns, \\" and duck[-1] == "myhome"
    assert sorted(clan.evaluator.generators()["m"]) == ["dyndns-cloudflare-a.org", "dyndns-duckdns-duckdns.org"]


def test_real_ddclient_sends_the_prompted_password_to_a_dyndns2_endpoint(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Callable[..., Any], tmp_path: Path
) -> None:
    clan = make_clan(CLAN)
    password = "s3cr'et#pw\"x"  # quotes and a comment sign: ddclient must read it whole
    made = generate_vars(clan, {SECRET: {SECRET: password}})
    cfg = clan.evaluator.config("home")
    files = {TEMPLATE: cfg.files[TEMPLATE].content.encode(), **made.host_files("home"),
             "/root/hook.sh": cfg.hooks["dyndns"].script.encode()}
    log = tmp_path / "requests.jsonl"
    done = isolated(f"""
        ip link add dyn0 type veth peer name dyn1 && ip addr add 192.0.2.10/24 dev dyn0 && ip link set dyn0 up
        useradd --system --home-dir /var/lib/dyndns --shell /usr/sbin/nologin dyndns
        sh /root/hook.sh
        stat -c '%U %a' {CONFIG}
        python3 {ENDPOINT} 127.0.0.1 18080 {log} > /root/port &
        n=0; until [ -s /root/port ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
        setpriv --reuid dyndns --regid dyndns --clear-groups \\
            ddclient -foreground -daemon 0 -file {CONFIG} -cache /var/lib/dyndns/ddclient.cache -noquiet
        kill $!
    """, files=files, net=True)
    assert done.stdout.splitlines()[0] == "dyndns 600", done.stdout + done.stderr
    [request] = [json.loads(line) for line in log.read_text().splitlines()]
    assert request["path"] == "/nic/update"
    assert request["query"]["hostname"] == "example.com,nas.example.com" and request["query"]["myip"] == "192.0.2.10"
    assert (request["user"], request["password"]) == ("alice", password)
    assert "SUCCESS" in done.stdout + done.stderr


def test_real_porkbun_updater_posts_porkbuns_json_with_the_prompted_secret_key(
    make_clan: MakeClan, generate_vars: Callable[..., Any], isolated: Callable[..., Any], tmp_path: Path
) -> None:
    clan = make_clan(PORKBUN_CLAN.replace("@SERVER@", "http://127.0.0.1:18081"))
    secret_key = "sk1_0123456789abcdef-secret"
    made = generate_vars(clan, {PORKBUN_SECRET: {PORKBUN_SECRET: secret_key}})
    cfg = clan.evaluator.config("home")
    files = {PORKBUN_LIST: cfg.files[PORKBUN_LIST].content.encode(), **made.host_files("home"),
             PORKBUN_SCRIPT: cfg.files[PORKBUN_SCRIPT].content.encode()}
    secret = secret_host_path(PORKBUN_SECRET, PORKBUN_SECRET)
    log = tmp_path / "requests.jsonl"
    # as systemd runs it: user dyndns, the key in a credentials directory only it can read
    run = (f"setpriv --reuid dyndns --regid dyndns --clear-groups env CREDENTIALS_DIRECTORY=/run/creds "
           f"STATE_DIRECTORY=/var/lib/dyndns sh {PORKBUN_SCRIPT} {PORKBUN_LIST}")
    done = isolated(f"""
        ip link add dyn0 type veth peer name dyn1 && ip addr add 192.0.2.20/24 dev dyn0 && ip link set dyn0 up
        useradd --system --home-dir /var/lib/dyndns --shell /usr/sbin/nologin dyndns
        install -d -o dyndns -g dyndns -m 0750 /var/lib/dyndns
        chmod 0755 /etc/pyclan /etc/pyclan/dyndns {PORKBUN_SCRIPT} && chmod 0644 {PORKBUN_LIST}  # as deployed
        install -d -o dyndns -m 0500 /run/creds && install -o dyndns -m 0400 {secret} /run/creds/{PORKBUN_SECRET}
        python3 {ENDPOINT} 127.0.0.1 18081 {log} > /root/port &
        n=0; until [ -s /root/port ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
        {run}; echo "first: $?"
        {run}; echo "second: $?"
        echo 'sk1_bad"key' > /run/creds/{PORKBUN_SECRET}
        ip addr flush dev dyn0 && ip addr add 192.0.2.21/24 dev dyn0
        {run}; echo "bad key: $?"
        kill $!
    """, files=files, check=False)
    out = done.stdout + done.stderr
    assert "first: 0" in out and "second: 0" in out and "bad key: 1" in out, out
    assert "the secret API key dyndns-porkbun-example.net is empty or has characters Porkbun keys do not have" in out
    assert "nas.example.net A: set to 192.0.2.20" in out and secret_key not in out
    requests = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["path"] for r in requests] == [  # the second run changed nothing, the bad key sent nothing
        "/api/json/v3/dns/editByNameType/example.net/A", "/api/json/v3/dns/editByNameType/example.net/A/nas"]
    for request in requests:
        assert request["method"] == "POST" and request["content_type"] == "application/json"
        assert request["json"] == {"apikey": "pk1_public", "secretapikey": secret_key, "content": "192.0.2.20",
                                   "ttl": "600"}


def test_porkbun_ipv6_records_ask_the_ip_url_with_the_default_https_server(make_clan: MakeClan) -> None:
    clan = make_clan("""
        [meta]
        name = "d"
        [machines.m]
        [instances.dyndns]
        roles.default.machines.m = {}
        roles.default.settings.ipUrl = "https://ip6.example/"
        [instances.dyndns.roles.default.settings.settings.v6]
        provider = "porkbun"
        domain = "a.org"
        secret_field_name = "secret_api_key"
        extraSettings = { api_key = "pk1_k", ip_version = "ipv6", host = "*", server = "api.test:8443" }
    """)
    cfg = clan.evaluator.config("m")
    assert cfg.files[PORKBUN_LIST].content.splitlines()[2:] == [
        "https://api.test:8443 a.org AAAA * pk1_k dyndns-porkbun-a.org - url:https://ip6.example/"]
    assert TEMPLATE not in cfg.files and UNIT not in cfg.units  # no ddclient without ddclient entries
