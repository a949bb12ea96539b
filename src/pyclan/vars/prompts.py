"""Answers to generator prompts: from a JSON file, from the stored value, or asked interactively.

The answers file (`--prompt-values FILE`) maps a generator to its prompts' answers:
`{"<gen>": {"<prompt>": "value"}}` applies to every machine; `{"<machine>/<gen>": {...}}`
applies to that machine's per-machine generator and wins over the plain form.
Interactive answers are read from the terminal; hidden types never echo (getpass / termios).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pyclan.config.generators import Prompt
from pyclan.errors import did_you_mean
from pyclan.vars.graph import VarsGraph
from pyclan.vars.layout import GenKey, vars_error

PromptValues = Mapping[str, Mapping[str, str]]


def load_prompt_values(path: Path) -> dict[str, dict[str, str]]:
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise vars_error(str(path), "prompt values file not found") from None
    except json.JSONDecodeError as exc:
        raise vars_error(f"{path}:{exc.lineno}:{exc.colno}", f"invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, dict) and all(isinstance(a, str) for a in v.values()) for v in data.values()
    ):
        raise vars_error(str(path), 'expected {"<generator>": {"<prompt>": "answer", …}, …} with string answers',
                         hint='use "<machine>/<generator>" as the key for one machine\'s generator')
    return {str(k): {str(p): a for p, a in v.items()} for k, v in data.items()}


def validate_prompt_values(values: PromptValues, graph: VarsGraph, where: str) -> None:
    """Every key must name a generator and every prompt one it declares: a typo must not pass."""
    by_name: dict[str, list[GenKey]] = {}
    for key in graph.nodes:
        by_name.setdefault(key.name, []).append(key)
    for gkey, answers in values.items():
        if "/" in gkey:
            machine, name = gkey.split("/", 1)
            keys = [GenKey(name, machine)] if GenKey(name, machine) in graph.nodes else []
            if machine == "shared" and GenKey(name) in graph.nodes:
                keys = [GenKey(name)]
        else:
            keys = by_name.get(gkey, [])
        if not keys:
            hint = did_you_mean(gkey, [*by_name, *(k.label for k in graph.nodes)])
            raise vars_error(f"{where}: {gkey}", f"no generator '{gkey}' in this clan", hint=hint)
        declared = {p for k in keys for p in graph.nodes[k].generator.prompts}
        for p in answers:
            if p not in declared:
                listed = ", ".join(sorted(declared)) or "none"
                raise vars_error(f"{where}: {gkey}.{p}", f"generator '{gkey}' has no prompt '{p}'",
                                 hint=did_you_mean(p, declared) or f"its prompts: {listed}")


class PromptAsker:
    """Finds the answer to one prompt; asks on the terminal only if nothing else answers."""

    def __init__(self, values: PromptValues | None = None) -> None:
        self.values = values or {}

    def from_values(self, key: GenKey, prompt: str) -> str | None:
        for k in (key.label, key.name):
            if prompt in self.values.get(k, {}):
                return self.values[k][prompt]
        return None

    def answer(self, key: GenKey, name: str, prompt: Prompt, current: str | None) -> str:
        """`current`: a stored persisted value, offered as the default when asking again."""
        given = self.from_values(key, name)
        if given is not None:
            return given
        if not sys.stdin.isatty():
            if current is not None:  # regenerating without a terminal: keep the persisted answer
                return current
            raise vars_error(
                f"{key.label}.prompts.{name}",
                f"generator '{key.label}' needs an answer for prompt '{name}' "
                f"({prompt.description or name}) and stdin is not a terminal",
                hint=f'pass --prompt-values FILE with {{"{key.name if key.shared else key.label}": {{"{name}": "…"}}}}',
            )
        return _ask(key, name, prompt, current)


def _ask(key: GenKey, name: str, prompt: Prompt, current: str | None) -> str:
    label = f"[{key.label}] {prompt.description or name}"
    keep = " (empty: keep the current value)" if current is not None else ""
    hidden = prompt.type in ("hidden", "multiline-hidden")
    if prompt.type == "line":
        sys.stderr.write(f"{label}{keep}: ")
        sys.stderr.flush()
        value = sys.stdin.readline().rstrip("\n")
    elif prompt.type == "hidden":
        value = getpass.getpass(f"{label}{keep}: ")
    else:
        sys.stderr.write(f"{label}{keep} (finish with Ctrl-D on an empty line):\n")
        sys.stderr.flush()
        with _no_echo(hidden):
            value = sys.stdin.read()
        if hidden:
            sys.stderr.write("\n")
    if not value and current is not None:
        return current
    return value


@contextlib.contextmanager
def _no_echo(hidden: bool) -> Iterator[None]:
    """Turn terminal echo off while reading a hidden multi-line answer."""
    if not hidden:
        yield
        return
    import termios

    fd = sys.stdin.fileno()
    old = termios.tcgetattr(fd)
    new = termios.tcgetattr(fd)
    new[3] &= ~termios.ECHO
    try:
        termios.tcsetattr(fd, termios.TCSADRAIN, new)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, old)
