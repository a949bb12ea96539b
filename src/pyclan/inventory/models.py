"""The inventory as typed data, with Clan's spelling and defaults (clan-semantics §1).

Settings blocks stay raw JSON values here: their meaning depends on the service's interface,
which only the evaluator knows. Unknown keys are errors everywhere (`extra="forbid"`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pyclan.inventory.target_host import destination_problem

MACHINE_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", re.IGNORECASE)
MACHINE_NAME_MAX = 63
# Inventory machine names (Clan's Python API rule, R1.4; checked by pydantic, in Rust)
MachineName = Annotated[
    str, StringConstraints(pattern=r"(?i)^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=MACHINE_NAME_MAX)
]

JsonObject = dict[str, Any]

_MAX_JSON_DEPTH = 256


def value_kind(value: Any) -> str:
    """A value's type in inventory words ("a string", "an attrset", "a TOML date-time", …)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an attrset"
    module = type(value).__module__
    if module == "datetime":
        return f"a TOML {type(value).__name__.replace('datetime', 'date-time')}"
    if callable(value):
        return "a function"
    return f"a Python {type(value).__name__}"


def _find_non_json(value: Any) -> tuple[str, str] | None:
    """Where (dotted sub-path) and what makes `value` not plain JSON, or None if it is JSON."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > _MAX_JSON_DEPTH:
            return where, "nested too deeply"
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    return where, f"an attrset with a non-string attribute name ({value_kind(key)})"
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                stack.append((item, f"{where}[{index}]", depth + 1))
        elif isinstance(node, float):
            if not math.isfinite(node):
                return where, f"a non-finite float ({node})"
        elif node is not None and not isinstance(node, str | int):
            return where, value_kind(node)
    return None


def validate_settings_block(value: JsonObject) -> JsonObject:
    """R1.8: a settings block is a JSON object (a/c: serialisable, no top-level `imports`)."""
    if not value:
        return value
    if "imports" in value:
        raise PydanticCustomError("settings_imports", "a settings block may not have a top-level `imports` key")
    try:  # fast path, in C: plain JSON survives a round trip unchanged
        if json.loads(json.dumps(value, allow_nan=False)) == value:
            return value
    except (TypeError, ValueError, RecursionError):
        pass
    where, what = _find_non_json(value) or ("", "not plain JSON")
    if what == "nested too deeply":
        what = "nested too deeply (or contains itself)"
    if len(where) > 60:
        where = where[:59] + "…"
    raise PydanticCustomError(
        "settings_not_json",
        "settings must be JSON-serialisable, but {where} is {what}",
        {"where": f"`{where}`" if where else "the value", "what": what, "subpath": where},
    )


SettingsBlock = Annotated[JsonObject, AfterValidator(validate_settings_block)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class Meta(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]*$")
    description: str | None = None
    icon: str | None = None
    domain: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
    )
    tld: str | None = Field(default=None, pattern=r"^[a-z]+$")

    @property
    def effective_domain(self) -> str:
        """Clan's rule: `domain`, else the deprecated `tld`, else "clan"."""
        return self.domain or self.tld or "clan"

    def to_json(self) -> JsonObject:
        return {
            "name": self.name,
            "description": self.description,
            "icon": self.icon,
            "domain": self.effective_domain,
            "tld": self.tld,
        }


class Deploy(_Strict):
    targetHost: str | None = None
    buildHost: str | None = None
    forwardAgent: bool | None = None

    @field_validator("targetHost", "buildHost")
    @classmethod
    def _safe_for_ssh(cls, value: str | None) -> str | None:
        """Refused at load time: a host or user that ssh would read as an option (issue 10.3)."""
        if value is not None:
            problem = destination_problem(value)
            if problem is not None:
                raise PydanticCustomError("target_host", "{problem}", {"problem": problem})
        return value


class Machine(_Strict):
    name: str | None = None
    description: str | None = None
    icon: str | None = None
    machineClass: Literal["nixos", "darwin"] = "nixos"
    installedAt: int | None = None
    tags: list[str] = Field(default_factory=list)
    deploy: Deploy = Field(default_factory=Deploy)

    @field_validator("tags")
    @classmethod
    def _unique(cls, tags: list[str]) -> list[str]:
        return tags if len(set(tags)) == len(tags) else list(dict.fromkeys(tags))


class RoleMachine(_Strict):
    settings: SettingsBlock = Field(default_factory=dict)


class RoleTag(_Strict):
    settings: SettingsBlock = Field(default_factory=dict)


class Role(_Strict):
    machines: dict[str, RoleMachine] = Field(default_factory=dict)
    tags: dict[str, RoleTag] = Field(default_factory=dict)
    settings: SettingsBlock = Field(default_factory=dict)
    extraModules: list[Any] = Field(default_factory=list)

    @field_validator("tags", mode="before")
    @classmethod
    def _coerce_tag_list(cls, value: Any) -> Any:
        """`tags = ["a", "b"]` is shorthand for `tags = {a = {}, b = {}}` (R1.7)."""
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return {tag: {} for tag in value}
        return value


class ModuleSpec(_Strict):
    name: str | None = None
    input: str | None = None


class Instance(_Strict):
    module: ModuleSpec = Field(default_factory=ModuleSpec)
    roles: dict[str, Role] = Field(default_factory=dict)

    def module_name(self, instance_name: str) -> str:
        return self.module.name if self.module.name is not None else instance_name


class InputSpec(_Strict):
    """A source of service modules (pyclan's answer to a flake input)."""

    url: str | None = None
    path: str | None = None
    package: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputSpec:
        given = [k for k in ("url", "path", "package") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an input needs exactly one of 'url', 'path' or 'package'")
        return self


class Inventory(_Strict):
    meta: Meta
    machines: dict[MachineName, Machine] = Field(default_factory=dict)
    tags: dict[str, list[str]] = Field(default_factory=dict)
    instances: dict[str, Instance] = Field(default_factory=dict)
    modules: Any = None  # legacy; ignored like Clan's `apply = _: {}`
    inputs: dict[str, InputSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _machine_names(self) -> Inventory:
        """R1.4: a machine's `name` defaults to its attribute name."""
        for key, machine in self.machines.items():
            if machine.name is None:
                machine.__dict__["name"] = key  # a default: not marked as set by the user
        return self
