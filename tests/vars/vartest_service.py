"""A test-only service (copied into test clans as services/vartest.py, module.input = "self").

It declares every kind of generator the vars engine must handle: Python and shell, per machine
and shared, dependencies across both, a persisted hidden prompt, an admin-only secret, and
(switched on by settings) a slow one, a cycle and one that forgets a declared file.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel

from pyclan.config.generators import Generator, GeneratorInput, Prompt, VarFile
from pyclan.config.machine_config import MachineConfig
from pyclan.services.service import InstanceContext, Service

service = Service("vartest", description="Generators for the vars engine's tests")


class PeerSettings(BaseModel):
    size: int = 16  # bytes of the shell-made token: changing it changes the script (outdated)
    slow: float = 0.0  # > 0: a generator "zz-slow" that sleeps this long
    cycle: bool = False
    forgetful: bool = False
    prompt: bool = True
    probe: str | None = None  # a host path the "probe" script tries to write (sandbox test)
    ca_version: int = 1  # the shared generator's `validation`: differing per machine is an error
    evil: str | None = None  # the script of a generator "evil" (file "f"): attack tests
    evil_deps: list[str] = []
    evil_timeout: float = 300.0


class SoloSettings(BaseModel):
    pass


def _count(what: str) -> None:
    counter = os.environ.get("VARTEST_COUNTER")
    if counter:
        with open(counter, "a") as fh:
            fh.write(what + "\n")


def make_wg(inp: GeneratorInput) -> Mapping[str, bytes | str]:
    _count(f"wg {inp.machine}")
    priv = secrets.token_bytes(32)
    return {"priv": base64.b64encode(priv), "pub": hashlib.sha256(priv).hexdigest()}


def make_ca(inp: GeneratorInput) -> Mapping[str, bytes | str]:
    _count(f"ca {inp.machine}")
    key = secrets.token_hex(32)
    return {"key": key, "cert": "CERT-" + hashlib.sha256(key.encode()).hexdigest()[:16]}


def make_note(inp: GeneratorInput) -> Mapping[str, bytes | str]:
    return {"note": "admin-only " + secrets.token_hex(24)}


def make_slow(seconds: float, inp: GeneratorInput) -> Mapping[str, bytes | str]:
    marker = os.environ.get("VARTEST_MARKER")
    if marker:
        Path(marker).write_text("started")
    time.sleep(seconds)
    return {"v": secrets.token_hex(16)}


CERT_SCRIPT = """
cat "$in/ca/key" "$in/wg/priv" | sha256sum | cut -d' ' -f1 > "$out/key"
printf 'cert for %s signed by %s' "$(cat "$in/wg/pub")" "$(cat "$in/ca/cert")" > "$out/cert"
"""


@service.role("peer", interface=PeerSettings, description="A member of the test mesh")
def peer(ctx: InstanceContext[PeerSettings]) -> MachineConfig:
    lines = [f"{m} {ctx.vars.public('wg', 'pub', machine=m)}" for m in sorted(ctx.roles["peer"].machines)]
    return MachineConfig().file("/etc/vartest/peers", "\n".join(lines) + "\n").file(
        "/etc/vartest/key-path", ctx.vars.secret_path("wg", "priv")
    )


@peer.generators
def peer_generators(ctx: InstanceContext[PeerSettings]) -> list[Generator]:
    s = ctx.settings
    gens = [
        Generator("wg", files={"priv": VarFile(), "pub": VarFile(secret=False)}, run=make_wg),
        Generator(
            "ca", share=True, files={"key": VarFile(), "cert": VarFile(secret=False)}, run=make_ca,
            validation={"version": s.ca_version},
        ),
        Generator(
            "cert",
            files={"key": VarFile(mode="0440", group="ssl-cert"), "cert": VarFile(secret=False)},
            dependencies=("ca", "wg"),
            script=CERT_SCRIPT,
        ),
        Generator(
            "token",
            files={"token": VarFile()},
            script=f"head -c {s.size} /dev/urandom | od -An -tx1 | tr -d ' \\n' > \"$out/token\"",
        ),
        Generator("local", files={"note": VarFile(deploy=False)}, run=make_note),
    ]
    if s.prompt:
        gens.append(
            Generator(
                "pw",
                prompts={"password": Prompt("Password of the admin user", "hidden", persist=True)},
                files={"hash": VarFile(secret=False)},
                script='sha256sum "$prompts/password" | cut -d" " -f1 > "$out/hash"',
            )
        )
    if s.slow:
        gens.append(Generator("zz-slow", files={"v": VarFile()}, run=functools.partial(make_slow, s.slow)))
    if s.cycle:
        gens.append(Generator("c1", files={"x": VarFile()}, dependencies=("c2",), script='echo 1 > "$out/x"'))
        gens.append(Generator("c2", files={"x": VarFile()}, dependencies=("c1",), script='echo 2 > "$out/x"'))
    if s.forgetful:
        gens.append(Generator("forgetful", files={"a": VarFile(), "b": VarFile()}, script='echo 1 > "$out/a"'))
    if s.evil is not None:
        gens.append(Generator("evil", files={"f": VarFile(secret=False)}, script=s.evil,
                              dependencies=tuple(s.evil_deps), timeout=s.evil_timeout))
    if s.probe:
        gens.append(
            Generator(
                "probe",
                files={"ifaces": VarFile(secret=False)},
                script=f"""
                (echo escaped > {s.probe}) 2>/dev/null || true
                grep -c ':' /proc/net/dev > "$out/ifaces"
                """,
            )
        )
    return gens


@service.role("solo", interface=SoloSettings, description="A machine outside the mesh")
def solo(ctx: InstanceContext[SoloSettings]) -> MachineConfig:
    return MachineConfig()


@solo.generators
def solo_generators(ctx: InstanceContext[SoloSettings]) -> list[Generator]:
    return [Generator("solo-key", files={"key": VarFile(owner="nobody")}, run=make_note_key)]


def make_note_key(inp: GeneratorInput) -> Mapping[str, bytes | str]:
    return {"key": "solo " + secrets.token_hex(24)}
