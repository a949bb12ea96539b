"""One clan's vars as a command sees them: graph, store, keys, and who each secret is for.

Every verb (generate, list/get/set, check, deploy's secret lookup) works through a
`VarsContext`, so "who must be able to read this file" is decided in exactly one place.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from pyclan.config.validation_hash import validation_hash
from pyclan.errors import ClanError, unknown_machine
from pyclan.vars import age, keys
from pyclan.vars.graph import Node, VarsGraph
from pyclan.vars.layout import SECRET, VALUE, GenKey, generate_hint, secret_path, vars_error
from pyclan.vars.store import StoredSecret, VarsStore
from pyclan.vars.view import DeclaredGenerator

if TYPE_CHECKING:
    from pyclan.clan import Clan


@dataclass(frozen=True)
class GenStatus:
    missing: tuple[str, ...]  # declared files not in the store
    outdated: bool  # stored validation hash differs from the declaration's

    @property
    def complete(self) -> bool:
        return not self.missing and not self.outdated


# per opened Clan: its graph and definition hashes (they cannot change for that object, whose
# evaluation is cached too); keys and stored values are always read afresh
_GRAPHS: dict[int, tuple[weakref.ReferenceType[Clan], VarsGraph, dict[GenKey, str]]] = {}


class VarsContext:
    def __init__(
        self,
        clan_dir: Path,
        declared: Mapping[str, Mapping[str, DeclaredGenerator]],
        graph: VarsGraph | None = None,
        hashes: dict[GenKey, str] | None = None,
    ) -> None:
        self.clan_dir = clan_dir
        self.declared = declared
        self.store = VarsStore(clan_dir)
        self._graph = graph
        self._identities: tuple[Path, list[age.Identity]] | None = None
        self._hashes: dict[GenKey, str] = hashes if hashes is not None else {}
        self._machine_keys: dict[str, str] = {}  # as read from keys/machines/ (create=False)
        self._verified_keys: dict[str, str] = {}  # proven against the private key, or just created
        self.created_machine_keys: list[str] = []

    @classmethod
    def of(cls, clan: Clan) -> VarsContext:
        """A context for this clan; deploy calls this per secret, so the graph is built once."""
        hit = _GRAPHS.get(id(clan))
        if hit is not None and hit[0]() is clan:
            return cls(clan.dir, hit[1].declared, hit[1], hit[2])
        ctx = cls(clan.dir, clan.evaluator.generators())
        _GRAPHS[id(clan)] = (weakref.ref(clan), ctx.graph, ctx._hashes)
        weakref.finalize(clan, _GRAPHS.pop, id(clan), None)
        return ctx

    @property
    def graph(self) -> VarsGraph:
        if self._graph is None:
            self._graph = VarsGraph(self.declared)
        return self._graph

    def node(self, key: GenKey) -> Node:
        return self.graph.nodes[key]

    # -- keys ----------------------------------------------------------------------------------
    def identities(self) -> list[age.Identity]:
        """The admin's private keys, loaded on first need (public-only work needs none)."""
        path = keys.admin_key_file()
        if self._identities is None or self._identities[0] != path:
            self._identities = (path, keys.load_admin_identities())
        return self._identities[1]

    def has_identities(self) -> bool:
        return self.identity_problem() is None

    def identity_problem(self) -> str | None:
        """Why the admin's key cannot be used (missing, unreadable by policy…), None if it can."""
        try:
            self.identities()
        except ClanError as err:
            return err.problems[0].render()
        return None

    @cached_property
    def admin_names(self) -> dict[str, str]:
        """Admin name → public key (`keys/admins/<name>.pub`)."""
        return keys.admin_recipients(self.clan_dir)

    @cached_property
    def admins(self) -> list[str]:
        return sorted(set(self.admin_names.values()))

    def describe_key(self, pub: str) -> str:
        """A public key as people know it: `admin 'alice'`, `machine 'web1'`, or a short form."""
        if pub.startswith("<"):
            return pub
        for name, key in self.admin_names.items():
            if key == pub:
                return f"admin '{name}'"
        for m in self.graph.by_machine:
            if self.machine_key(m, create=False) == pub:
                return f"machine '{m}'"
        return f"an unknown key {pub[:16]}… (removed admin or machine?)"

    def machines(self, machines: Iterable[str] | None) -> list[str]:
        """The requested machines, validated (default and empty: every machine)."""
        known = sorted(self.graph.by_machine)
        chosen = list(dict.fromkeys(machines or []))
        for m in chosen:
            if m not in self.graph.by_machine:
                raise ClanError(unknown_machine(m, known))
        return chosen or known

    def machine_key(self, machine: str, create: bool) -> str | None:
        if machine in self._verified_keys:
            return self._verified_keys[machine]
        if not create and machine in self._machine_keys:
            return self._machine_keys[machine]
        if create:
            existed = keys.machine_public_key(self.clan_dir, machine) is not None
            if existed:  # never encrypt to a key that is not the machine's own (a replaced .pub)
                pub: str | None = keys.verify_machine_key(self.clan_dir, machine, self.identities())
            else:
                pub = keys.ensure_machine_key(self.clan_dir, machine, self.admins)
                self.created_machine_keys.append(machine)
            if pub is not None:
                self._verified_keys[machine] = pub
            return pub
        pub = keys.machine_public_key(self.clan_dir, machine)
        if pub is not None:
            self._machine_keys[machine] = pub
        return pub

    def wanted_recipients(self, key: GenKey, file: str, create: bool = True) -> tuple[str, ...]:
        """Every admin plus every machine that deploys the file; a machine without a key
        (only possible with create=False) is shown as `<no key: m>` so it never matches."""
        wanted = set(self.admins)
        for m in self.node(key).deploying_machines(file):
            pub = self.machine_key(m, create)
            wanted.add(pub if pub is not None else f"<no key: {m}>")
        return tuple(sorted(wanted))

    def encrypt_for(self, key: GenKey, file: str, data: bytes) -> StoredSecret:
        recipients = self.wanted_recipients(key, file)
        return StoredSecret(age.encrypt(data, recipients), recipients)

    # -- status --------------------------------------------------------------------------------
    def definition_hash(self, key: GenKey) -> str:
        if key not in self._hashes:
            self._hashes[key] = validation_hash(self.node(key).generator)
        return self._hashes[key]

    def hash_of(self, key: GenKey) -> str:
        """The validation hash: the definition's, plus (R12.4 extended) the stored digest of every
        file of every dependency, so a regenerated or `vars set` dependency makes this outdated."""
        node = self.node(key)
        if not node.deps:
            return self.definition_hash(key)
        h = hashlib.sha256(self.definition_hash(key).encode())
        for dep in sorted(node.deps):
            h.update(f"\0{dep.label}".encode())
            h.update(self.digest_of(dep).encode())
        return h.hexdigest()

    def digest_of(self, key: GenKey) -> str:
        """sha256 over a generator's stored files (public values in clear, secrets as stored)."""
        h = hashlib.sha256()
        for f, vf in sorted(self.node(key).generator.files.items()):
            if vf.secret:
                stored = self.store.secret(key, f)
                data = stored.ciphertext if stored is not None else None
            else:
                data = self.store.public(key, f)
            h.update(f"\0{f}\0{SECRET if vf.secret else VALUE}\0".encode())
            h.update(hashlib.sha256(data).hexdigest().encode() if data is not None else b"missing")
        return h.hexdigest()

    def damaged(self, key: GenKey) -> list[str]:
        """Secret files whose recipient list names the admin's key but that do not decrypt
        (truncated or corrupted): `vars generate` regenerates them. Empty without an admin key."""
        if not self.has_identities():
            return []
        mine = {age.public_key(i) for i in self.identities()}
        out = []
        for f, vf in sorted(self.node(key).generator.files.items()):
            if not vf.secret:
                continue
            stored = self.store.secret(key, f)
            if stored is None or not mine & set(stored.recipients):
                continue
            if age.try_decrypt(stored.ciphertext, self.identities()) is None:
                out.append(f)
        return out

    def status(self, key: GenKey) -> GenStatus:
        gen = self.node(key).generator
        missing = tuple(f for f, vf in sorted(gen.files.items()) if not self.store.has(key, f, vf.secret))
        return GenStatus(missing, self.store.validation_hash(key) != self.hash_of(key))

    def complete(self, key: GenKey) -> bool:
        return self.status(key).complete

    # -- values --------------------------------------------------------------------------------
    def read(self, key: GenKey, file: str) -> bytes:
        """A stored value in clear (secrets decrypted with the admin key)."""
        vf = self.node(key).generator.files[file]
        where = f"{key.label}/{file}"
        if not vf.secret:
            value = self.store.public(key, file)
            if value is None:
                raise vars_error(where, f"Var {key.name}/{file} has not been generated yet",
                                 hint=generate_hint(key.machine))
            return value
        stored = self.store.secret(key, file)
        if stored is None:
            raise vars_error(where, f"Var {key.name}/{file} has not been generated yet",
                             hint=generate_hint(key.machine))
        path = secret_path(self.clan_dir, key, file)
        plain = age.try_decrypt(stored.ciphertext, self.identities())
        if plain is not None:
            return plain
        if {age.public_key(i) for i in self.identities()} & set(stored.recipients):
            raise vars_error(
                where, f"{path.relative_to(self.clan_dir)} is damaged (truncated or corrupted): it lists your key as "
                "a recipient but does not decrypt",
                hint=f"restore it from git, or {generate_hint(key.machine)} to generate it again",
            )
        return age.decrypt(stored.ciphertext, self.identities(), path, where, hint=keys.NOT_RECIPIENT_HINT)

    def read_all(self, key: GenKey) -> dict[str, bytes]:
        return {f: self.read(key, f) for f in sorted(self.node(key).generator.files)}
