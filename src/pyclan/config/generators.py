"""How a service declares a generator of vars (clan-semantics §12, R12.1).

This is the declaration only: services return these from their `generators` functions; the
vars package runs them and stores what they produce. The field names keep Clan's meaning
(`share`, `files.<f>.secret/deploy/owner/group/mode/neededFor`, `prompts.<p>.type/persist`,
`dependencies`, `script`, `validation`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

NeededFor = Literal["partitioning", "activation", "users", "services"]
PromptType = Literal["line", "hidden", "multiline", "multiline-hidden"]


@dataclass(frozen=True)
class VarFile:
    secret: bool = True
    deploy: bool = True
    owner: str = "root"
    group: str = "root"
    mode: str = "0400"
    neededFor: NeededFor = "services"  # Clan's spelling


@dataclass(frozen=True)
class Prompt:
    description: str | None = None
    type: PromptType = "line"
    persist: bool = False


@dataclass(frozen=True)
class GeneratorInput:
    """What a Python generator receives: dependency values and prompt answers (bytes)."""

    machine: str | None  # None for a shared generator run once for all machines
    dependencies: Mapping[str, Mapping[str, bytes]]  # dep generator → file → value
    prompts: Mapping[str, str]


GeneratorFn = Callable[[GeneratorInput], Mapping[str, bytes | str]]


@dataclass(frozen=True)
class Generator:
    """One generator of vars. Exactly one of `run` (Python) or `script` (bash) does the work.

    A Python `run` returns file name → value; a `script` writes `$out/<file>` and reads
    `$in/<dep>/<file>` and `$prompts/<prompt>`, as in Clan.
    """

    name: str
    files: Mapping[str, VarFile] = field(default_factory=dict)
    share: bool = False
    prompts: Mapping[str, Prompt] = field(default_factory=dict)
    dependencies: tuple[str, ...] = ()
    run: GeneratorFn | None = None
    script: str | None = None
    runtime_inputs: tuple[str, ...] = ()  # commands the script needs on PATH (informational)
    validation: Any = None  # any JSON value; a change makes stored values outdated (R12.4)
    timeout: float = 300.0  # seconds a `script` may run before it is killed (an error)

    def __post_init__(self) -> None:
        """A persisted prompt implies a (secret) file of the same name holding the answer (R12.1)."""
        implied = {p: VarFile() for p, prompt in self.prompts.items() if prompt.persist and p not in self.files}
        if implied:
            object.__setattr__(self, "files", {**self.files, **implied})
