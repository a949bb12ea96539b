"""The generators of a clan as one dependency graph, and which of them a command must run (R12.5).

Nodes are generators by identity (`GenKey`): a per-machine generator once per machine, a shared
one once for the whole clan (with every machine that declares it). A dependency name resolves
to the generator of that name on the same machine, else to the shared generator of that name
(Clan assumes an undeclared dependency is shared).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pyclan.config.generators import Generator, VarFile
from pyclan.errors import did_you_mean
from pyclan.vars.layout import GenKey, vars_error
from pyclan.vars.view import DeclaredGenerator


@dataclass
class Node:
    key: GenKey
    generator: Generator  # the first declaring machine's declaration (the same for all, R12.2)
    declared_by: dict[str, DeclaredGenerator] = field(default_factory=dict)  # machine → declaration
    deps: list[GenKey] = field(default_factory=list)

    @property
    def machines(self) -> list[str]:
        return sorted(self.declared_by)

    def deploying_machines(self, file: str) -> list[str]:
        """Machines that receive this file on deploy (its machine key becomes a recipient)."""
        return [m for m in self.machines if self.file_of(m, file).deploy]

    def file_of(self, machine: str, file: str) -> VarFile:
        return self.declared_by[machine].generator.files[file]


_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$")


def _check_names(machine: str, decl: DeclaredGenerator) -> None:
    """Generator, file and prompt names become folder and file names: no `/`, no leading dot."""
    gen = decl.generator
    names = [("generator", gen.name), *(("file", f) for f in gen.files), *(("prompt", p) for p in gen.prompts)]
    for what, name in names:
        if not _NAME.match(name):
            raise vars_error(
                f"{machine}/{gen.name}", f"invalid {what} name {name!r} (declared by {decl.origin})",
                hint="use letters, digits and _ . @ + - (not starting with '.', '-' or '+')",
            )


class VarsGraph:
    def __init__(self, declared: Mapping[str, Mapping[str, DeclaredGenerator]]) -> None:
        self.declared = declared
        self.nodes: dict[GenKey, Node] = {}
        self.by_machine: dict[str, list[GenKey]] = {}
        for machine in sorted(declared):
            keys: list[GenKey] = []
            for name, decl in sorted(declared[machine].items()):
                _check_names(machine, decl)
                key = GenKey(name, None if decl.generator.share else machine)
                node = self.nodes.setdefault(key, Node(key, decl.generator))
                node.declared_by[machine] = decl
                keys.append(key)
            self.by_machine[machine] = keys
        self.dependents: dict[GenKey, set[GenKey]] = {k: set() for k in self.nodes}
        for key, node in self.nodes.items():
            for dep in self._resolve_deps(node):
                node.deps.append(dep)
                self.dependents[dep].add(key)
        self._check_cycles()

    def _resolve_deps(self, node: Node) -> list[GenKey]:
        out: list[GenKey] = []
        for dep in node.generator.dependencies:
            targets: set[GenKey] = set()
            for machine in node.machines:
                own = self.declared[machine].get(dep)
                targets.add(GenKey(dep, None if own is None or own.generator.share else machine))
            for target in sorted(targets):
                if target not in self.nodes:
                    known = {k.name for k in self.nodes}
                    hint = did_you_mean(dep, known)
                    raise vars_error(
                        node.key.label,
                        f"generator '{node.key.name}' depends on '{dep}', which no machine declares"
                        + (f" (looked for {target.label})" if target.machine else " as a shared generator"),
                        hint=hint or "declare that generator in a service of the same machine, or share it",
                    )
                if node.key.shared and not target.shared:
                    raise vars_error(
                        node.key.label,
                        f"shared generator '{node.key.name}' depends on per-machine generator '{target.label}'",
                        hint="a shared generator can only depend on shared generators",
                    )
                out.append(target)
        return out

    def _check_cycles(self) -> None:
        state: dict[GenKey, int] = {}  # 1 = on the current path, 2 = done
        path: list[GenKey] = []

        def visit(key: GenKey) -> None:
            state[key] = 1
            path.append(key)
            for dep in self.nodes[key].deps:
                if state.get(dep) == 1:
                    cycle = [*path[path.index(dep):], dep]
                    raise vars_error(
                        key.label,
                        "generators depend on each other in a cycle: " + " -> ".join(k.label for k in cycle),
                        hint="remove one of these dependencies",
                    )
                if dep not in state:
                    visit(dep)
            path.pop()
            state[key] = 2

        for key in sorted(self.nodes):
            if key not in state:
                visit(key)

    # -- selection --------------------------------------------------------------------------------
    def keys_of(self, machines: Iterable[str]) -> list[GenKey]:
        """The generators the given machines declare (shared ones included once)."""
        seen: dict[GenKey, None] = {}
        for m in machines:
            for k in self.by_machine.get(m, []):
                seen[k] = None
        return list(seen)

    def closure_dependents(self, start: Iterable[GenKey]) -> set[GenKey]:
        out: set[GenKey] = set()
        todo = list(start)
        while todo:
            k = todo.pop()
            if k in out:
                continue
            out.add(k)
            todo.extend(self.dependents[k])
        return out

    def missing_dependencies(self, keys: Iterable[GenKey], complete: Callable[[GenKey], bool]) -> set[GenKey]:
        """Transitive dependencies of `keys` that are not complete (they must run first)."""
        out: set[GenKey] = set()
        todo = [d for k in keys for d in self.nodes[k].deps]
        while todo:
            k = todo.pop()
            if k in out or complete(k):
                continue
            out.add(k)
            todo.extend(self.nodes[k].deps)
        return out

    def order(self, keys: Iterable[GenKey]) -> list[GenKey]:
        """Topological order (dependencies first), ties broken by name for stable output."""
        wanted = set(keys)
        indeg = {k: sum(1 for d in self.nodes[k].deps if d in wanted) for k in wanted}
        ready = sorted(k for k, n in indeg.items() if n == 0)
        out: list[GenKey] = []
        while ready:
            k = ready.pop(0)
            out.append(k)
            for dep in sorted(self.dependents[k]):
                if dep in indeg:
                    indeg[dep] -= 1
                    if indeg[dep] == 0:
                        ready.append(dep)
            ready.sort()
        return out
