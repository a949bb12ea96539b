"""Fixtures for bundled-service tests: run generators for real, run hooks in a private root.

`generate_vars` runs every declared generator's real `run` function (dependencies first, shared
generators once) and stores public values where the evaluator reads them; secrets are returned
so tests can place them where a host would have them. `isolated` runs a shell script as root in
a private root (the one deploy's fast tests use): /etc, /usr, /var and /srv are copy-on-write
overlays and /var/lib, /run and /root are empty tmpfs, so activation hooks and `sshd -t` run
unmodified without touching this machine.
"""

from __future__ import annotations

import shlex
import socket
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pyclan.clan import Clan
from pyclan.config.generators import Generator, GeneratorInput
from pyclan.hosts.private_root import PrivateRoot
from pyclan.vars.view import DeclaredGenerator, public_value_path, secret_host_path


@dataclass
class GeneratedVars:
    """What `generate_vars` produced: secret values per (machine, generator, file)."""

    secrets: dict[tuple[str, str, str], bytes] = field(default_factory=dict)
    public: dict[tuple[str, str, str], bytes] = field(default_factory=dict)

    def secret(self, machine: str, generator: str, file: str) -> bytes:
        return self.secrets[(machine, generator, file)]

    def host_files(self, machine: str) -> dict[str, bytes]:
        """Secret host path → value, for every deployable secret of `machine`."""
        return {secret_host_path(g, f): v for (m, g, f), v in self.secrets.items() if m == machine}


Prompts = Mapping[str, Mapping[str, str]]  # generator → prompt → answer
GenerateVars = Callable[..., GeneratedVars]


def _order(declared: Mapping[str, DeclaredGenerator]) -> list[Generator]:
    """`declared` in dependency order (dependencies outside `declared` are already satisfied)."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in declared:
            return
        for dep in declared[name].generator.dependencies:
            visit(dep)
        order.append(name)

    for name in sorted(declared):
        visit(name)
    return [declared[n].generator for n in order]


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


@pytest.fixture
def generate_vars() -> GenerateVars:
    """Run the clan's generators (Python `run`s): shared ones once, then each machine's; store public values."""

    def generate(clan: Clan, prompts: Prompts | None = None) -> GeneratedVars:
        out = GeneratedVars()
        declared_by_machine = clan.evaluator.generators()
        shared_values: dict[str, dict[str, bytes]] = {}

        def run(gen: Generator, machine: str, deps: Mapping[str, Mapping[str, bytes]]) -> dict[str, bytes]:
            assert gen.run is not None, f"generator {gen.name} has no Python run"
            answers = dict((prompts or {}).get(gen.name, {}))
            result = gen.run(GeneratorInput(machine=None if gen.share else machine, dependencies=deps,
                                            prompts=answers))
            assert set(result) == set(gen.files), (gen.name, sorted(result), sorted(gen.files))
            return {f: _bytes(v) for f, v in result.items()}

        # shared generators first (they depend only on shared ones, possibly declared by another machine)
        shared = {n: d for decl in declared_by_machine.values() for n, d in decl.items() if d.generator.share}
        for gen in _order(shared):
            shared_values[gen.name] = run(gen, "", {d: shared_values[d] for d in gen.dependencies})
        for machine, declared in sorted(declared_by_machine.items()):
            values: dict[str, dict[str, bytes]] = {}
            for gen in _order({n: d for n, d in declared.items() if not d.generator.share}):
                values[gen.name] = run(gen, machine, {d: values.get(d) or shared_values[d] for d in gen.dependencies})
            for name, decl in declared.items():
                gen = decl.generator
                files = shared_values[name] if gen.share else values[name]
                for fname, value in files.items():
                    if gen.files[fname].secret:
                        out.secrets[(machine, gen.name, fname)] = value
                    else:
                        out.public[(machine, gen.name, fname)] = value
                        path = public_value_path(clan.dir, gen, fname, machine)
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(value)
        return out

    return generate


Isolated = Callable[..., subprocess.CompletedProcess[str]]
PRIVATE = ("/etc/", "/usr/", "/var/", "/srv/", "/run/", "/root/")  # what `isolated` mounts privately


@pytest.fixture
def isolated(tmp_path: Path) -> Isolated:
    """Run `script` with /bin/sh in a private root (`pyclan.hosts.private_root`, see module docstring).

    Every call gets a fresh root whose /etc, /usr, /var and /srv changes carry over to the next
    call; /var/lib, /run and /root start empty each time; /tmp and the host name are this
    machine's. The root has its own network namespace (only `lo`), so scripts can start daemons
    on standard ports; they end with the call (`net` is accepted for older callers and changes
    nothing).

    `files` (host path → bytes) are written inside the namespace first, e.g. secrets under
    /var/lib/pyclan/secrets; after the run, /etc changes are visible under `etc_upper`.
    """

    def run(
        script: str, files: Mapping[str, bytes] | None = None, check: bool = True, net: bool = False
    ) -> subprocess.CompletedProcess[str]:
        with PrivateRoot(tmp_path / "isolated", socket.gethostname(), tmpfs=["/var/lib"], share_tmp=True) as root:
            for path, value in sorted((files or {}).items()):
                assert path.startswith(PRIVATE), f"{path} would be written outside the private mounts"
                quoted = shlex.quote(path)
                root.run(f"mkdir -p -- \"$(dirname -- {quoted})\" && cat > {quoted} && chmod 0400 {quoted}",
                         input=value)
            done = root.run(script, check=False, timeout=None)
        if check and done.returncode != 0:
            raise AssertionError(f"isolated script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    return run


@pytest.fixture
def etc_upper(tmp_path: Path) -> Path:
    """Where `isolated` runs leave their /etc changes."""
    return tmp_path / "isolated" / "upper" / "etc"
