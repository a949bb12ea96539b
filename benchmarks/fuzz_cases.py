"""Fuzz cases for `fuzz_campaign.py`: seeds, random values and mutations of inventories.

A case is made from a seed inventory and its number only (`make_case(index, seeds, master)`), so
any case can be made again. Seeds are the quickstart (`examples/quickstart`) and every inventory
written as a literal in `tests/`. Mutations are text-level (TOML and JSON: flips, inserts of
tricky tokens, deletions, duplicated and swapped lines, truncation, deep nesting, huge numbers,
escapes), structural (values replaced by random ones, keys added, deleted, renamed, types
changed, subtrees copied, nesting deepened, the inventory split over two sources, machines/
folders added), gentle (a leaf takes another leaf's value) and interface-driven (settings drawn
from the bundled services' own JSON schemas, mostly of the right shape, with edge values).
"""

from __future__ import annotations

import ast
import base64
import copy
import json
import random
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart"

# -- seeds --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    name: str
    data: dict[str, Any]
    toml: str
    template: Path | None = None  # a folder whose vars/ and keys/ every case of this seed gets


def _without_inputs(data: dict[str, Any]) -> dict[str, Any]:
    """Seeds never declare inputs: a git URL would reach for the network."""
    return {k: v for k, v in data.items() if k != "inputs"}


def load_seeds() -> list[Seed]:
    seeds = [Seed("quickstart", tomllib.loads((QUICKSTART / "clan.toml").read_text()), "", QUICKSTART)]
    seeds[0] = Seed("quickstart", seeds[0].data, (QUICKSTART / "clan.toml").read_text(), QUICKSTART)
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "[meta]" in node.value:
                text = textwrap.dedent(node.value)
                try:
                    data = tomllib.loads(text)
                except tomllib.TOMLDecodeError:
                    continue
                if "inputs" in data:
                    data = _without_inputs(data)
                    text = _to_toml(data) or text
                seeds.append(Seed(f"{path.relative_to(ROOT)}:{node.lineno}", data, text))
    return seeds


# -- random values and tokens -------------------------------------------------------------------

KEYS = [
    "meta", "name", "domain", "tld", "description", "icon", "machines", "instances", "tags", "roles",
    "settings", "module", "input", "inputs", "url", "path", "package", "services", "modules", "deploy",
    "targetHost", "buildHost", "forwardAgent", "machineClass", "installedAt", "extraModules", "_type",
    "override", "priority", "content", "imports", "all", "nixos", "darwin", "self", "clan-core", "default",
    "peer", "controller", "server", "client", "host", "user", "port", "jumphosts", "networks", "packages",
    "greeting", "ipRanges", "dynamicIp", "enable", "groups", "prompt", "directories", "destinations",
    "allowedIps", "exports", "share", "generators", "files", "secret", "value", "certificate", "hostKeys",
]  # fmt: skip
STRINGS = [
    "", " ", "a", "x", "all", "root", "root@192.0.2.1", "192.0.2.1", "::1", "fd00::1", "-oProxyCommand=x",
    "root@-oX", "a b", "tab\there", "new\nline", "nul\x00", "esc\x1b[2J", "\u202e", "é", "💥", "\ud800",
    "../../etc/passwd", "/etc/shadow", "$(id)", "`id`", "'; rm -rf /", "%s%n", "{}", "[]", "null", "0",
    "1e400", "nixos", "darwin", "override", "mkForce", "x" * 300, "a.b.c", "A-Z", "-", "_", "..", ".",
]  # fmt: skip
INTS = [0, 1, -1, 2, 22, 65535, 65536, 1 << 31, (1 << 63) - 1, 1 << 63, -(1 << 63) - 1, 1 << 64, 10**30]
FLOATS = [0.0, -0.0, 0.5, 1e300, float("inf"), float("-inf"), float("nan")]
TOKENS = [
    "[", "]", "{", "}", "[[", "]]", '"', "'", '"""', "'''", "=", ".", ",", ":", "\n", "#", "\\", "\\u0000",
    "\\ud800", "\\udfff", "\\uD83D\\uDE00", "\\x41", "\\e", "inf", "nan", "-inf", "+inf", "1e400", "-0",
    "0x7f", "0o17", "0b101", "1_000", "9" * 30, "9" * 5000, "0x" + "f" * 5000, "0b" + "1" * 70,
    "1979-05-27T07:32:00Z", "07:32:00", "1979-05-27",
    "true", "false", "null", "NaN", "Infinity", "\x00", "\x7f", "\u202e", "é", "💥", "\r\n", "\t", " = ",
    "-oProxyCommand=x", "a.b.c.d.e.f.g.h = 1\n", '{"a": 1, "a": 2}', "[meta]\n", "[machines.x]\n",
    "[instances.x.roles.y]\n", "[[x]]\n",
]  # fmt: skip


def random_string(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(STRINGS + KEYS)
    alphabet = "abcXYZ09-_.@:/ \t\n\"'\\[]{}=#$\x00\x1b\x7fé💥\u202e\ud800"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def random_scalar(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.1:
        return None
    if roll < 0.2:
        return rng.random() < 0.5
    if roll < 0.4:
        return rng.choice(INTS) if rng.random() < 0.5 else rng.randint(-5, 100)
    if roll < 0.45:
        return rng.choice(FLOATS)
    return random_string(rng)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 4 or roll < 0.5:
        return random_scalar(rng)
    if roll < 0.7:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_key(rng): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def random_key(rng: random.Random) -> str:
    return rng.choice(KEYS) if rng.random() < 0.7 else random_string(rng)


# -- structural mutations -----------------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    stack = [(value, prefix)]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, item in items:
            out.append((*path, key))
            stack.append((item, (*path, key)))
    return out


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        root = root[key]
    return root


def _set(root: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    _get(root, path[:-1])[path[-1]] = value
    return root


def _deepen(value: Any, rng: random.Random) -> Any:
    for _ in range(rng.choice([2, 10, 40, 70, 200])):
        value = {random_key(rng): value} if rng.random() < 0.7 else [value]
    return value


def _retype(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        return list(value.values()) if rng.random() < 0.5 else list(value)
    if isinstance(value, list):
        return {str(i): v for i, v in enumerate(value)} if rng.random() < 0.5 else (value[0] if value else None)
    if isinstance(value, str):
        return rng.choice([len(value), [value], {value: {}}, value.upper(), value + value])
    if rng.random() < 0.5:
        return {"_type": "override", "priority": rng.choice([-1, 0, 50, 1000, 1 << 64, "x"]), "content": value}
    return str(value)


def _gentle(data: Any, paths: list[tuple[Any, ...]], rng: random.Random) -> Any:
    """A small change that often keeps the inventory valid: a leaf takes another leaf's value,
    a known key is added with a typical value, a name is reused elsewhere."""
    leaves = [p for p in paths if p and not isinstance(_get(data, p), dict | list)]
    dicts = [p for p in paths if isinstance(_get(data, p), dict)]
    if leaves and rng.random() < 0.5:
        target, source = rng.choice(leaves), rng.choice(leaves)
        return _set(data, target, copy.deepcopy(_get(data, source)))
    if dicts:
        node = _get(data, rng.choice(dicts))
        node[random_key(rng)] = rng.choice([{}, [], "all", True, 1, ["all"], {"settings": {}}, random_scalar(rng)])
    return data


def mutate_structure(data: Any, rng: random.Random) -> Any:
    paths = _paths(data)
    if rng.random() < 0.4:
        return _gentle(data, paths, rng)
    in_settings = [p for p in paths if "settings" in p[:-1]]
    path = rng.choice(in_settings) if in_settings and rng.random() < 0.3 else rng.choice(paths)
    node = _get(data, path)
    op = rng.randrange(9)
    if op == 0:
        return _set(data, path, random_value(rng))
    if op == 1 and isinstance(node, dict):
        other = copy.deepcopy(_get(data, rng.choice(paths)))
        node[random_key(rng)] = random_value(rng) if rng.random() < 0.7 else other
        return data
    if op == 2 and path:
        parent = _get(data, path[:-1])
        del parent[path[-1]]
        return data
    if op == 3 and path and isinstance(_get(data, path[:-1]), dict):
        parent = _get(data, path[:-1])
        value = parent.pop(path[-1])
        others = [k for k in parent if isinstance(k, str)]
        parent[random_key(rng) if not others or rng.random() < 0.7 else rng.choice(others) + "x"] = value
        return data
    if op == 4:
        return _set(data, path, _retype(node, rng))
    if op == 5:
        return _set(data, path, _deepen(copy.deepcopy(node), rng))
    if op == 6 and isinstance(node, list) and node:
        return _set(data, path, node * rng.choice([2, 10, 100]))
    if op == 7:
        source = _get(data, rng.choice(paths))
        return _set(data, path, copy.deepcopy(source)) if len(_paths(source)) < 2000 else data
    if op == 8 and isinstance(data, dict) and isinstance(data.get("machines"), dict) and data["machines"]:
        machines = data["machines"]
        name = rng.choice(list(machines))
        new = rng.choice([name + "2", name.upper(), "-" + name, name[:-1], "x" * 64, "a_b", "new"])
        machines[new] = copy.deepcopy(machines[name])
        return data
    return _set(data, path, random_value(rng))


# -- settings from the services' own interfaces ----------------------------------------------------

_CATALOGUE: dict[str, dict[str, Any]] | None = None


def catalogue() -> dict[str, dict[str, Any]]:
    """service → role → JSON schema of its settings interface (the bundled library)."""
    global _CATALOGUE
    if _CATALOGUE is None:
        from pyclan.services.registry import ServiceRegistry

        registry = ServiceRegistry.for_clan(None)
        _CATALOGUE = {}
        for entry in registry.entries():
            if entry.input is None:
                service = registry.providers[None].load(entry.name)
                _CATALOGUE[entry.name] = {
                    name: role.interface.model_json_schema() for name, role in sorted(service.roles.items())
                }
    return _CATALOGUE


def from_schema(schema: dict[str, Any], defs: dict[str, Any], rng: random.Random, depth: int = 0) -> Any:
    """A value for a JSON schema: mostly of the right shape, with edge values, sometimes wrong."""
    if rng.random() < 0.03 or depth > 6:
        return random_value(rng, 3)
    if "$ref" in schema:
        return from_schema(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs, rng, depth + 1)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return from_schema(rng.choice(schema[key]), defs, rng, depth + 1)
    if "enum" in schema:
        return rng.choice(schema["enum"]) if rng.random() < 0.9 else random_string(rng)
    if "const" in schema:
        return schema["const"]
    if "default" in schema and rng.random() < 0.2:
        return copy.deepcopy(schema["default"])
    if schema.get("examples") and rng.random() < 0.3:
        return copy.deepcopy(rng.choice(schema["examples"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "string":
        return _printable_string(rng)
    if kind == "integer":
        low, high = schema.get("minimum", -(1 << 63)), schema.get("maximum", (1 << 63) - 1)
        edges = [low, high, 0, 1, rng.randint(max(low, -1000), min(high, 1000))]
        return rng.choice([*edges, *edges, low - 1, high + 1])
    if kind == "number":
        return rng.choice([0.0, -0.0, 0.5, 1e300, 1.5, 3, float("inf")])
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        items = schema.get("items", {})
        return [from_schema(items, defs, rng, depth + 1) for _ in range(rng.choice([0, 1, 1, 2, 3]))]
    if kind == "object" or "properties" in schema:
        out: dict[str, Any] = {}
        for name, sub in schema.get("properties", {}).items():
            if rng.random() < (0.9 if name in schema.get("required", []) else 0.5):
                out[name] = from_schema(sub, defs, rng, depth + 1)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for _ in range(rng.choice([0, 1, 1, 2])):
                out[rng.choice(["home", "a", "work", "x-y", "wifi", _printable_string(rng)])] = from_schema(
                    extra, defs, rng, depth + 1
                )
        return out
    return random_value(rng, 3)


def _printable_string(rng: random.Random) -> str:
    """A string a file can hold (no lone surrogate), often plausible, sometimes hostile."""
    text = random_string(rng) if rng.random() < 0.3 else rng.choice(["home", "a", "x-y", "192.0.2.1", "root", ""])
    return text.encode("utf-8", "replace").decode("utf-8") if not text.isascii() else text


def _settings_for(service: str, role: str, rng: random.Random) -> Any:
    schema = catalogue().get(service, {}).get(role, {})
    return from_schema(schema, schema.get("$defs", {}), rng)


def interface_case(seed: Seed, rng: random.Random) -> Any:
    """The quickstart with new settings for some of its instances, or a fresh clan of random
    bundled services with settings drawn from their interfaces."""
    services = catalogue()
    if seed.name == "quickstart" and rng.random() < 0.6:
        data = copy.deepcopy(seed.data)
        instances = data["instances"]
        for name in rng.sample(sorted(instances), rng.randint(1, 3)):
            instance = instances[name]
            service = instance.get("module", {}).get("name", name)
            for role_name, role in instance.get("roles", {}).items():
                members = list(role.get("machines", {}))
                if members and rng.random() < 0.5:
                    role["machines"][rng.choice(members)] = {"settings": _settings_for(service, role_name, rng)}
                else:
                    role["settings"] = _settings_for(service, role_name, rng)
        return data
    machines = rng.sample(["alpha", "beta", "gamma", "delta"], rng.randint(1, 4))
    data = {"meta": {"name": "iface"}, "machines": {m: {"tags": rng.sample(["web", "db"], rng.randint(0, 2))}
                                                  for m in machines}, "instances": {}}  # fmt: skip
    for index in range(rng.randint(1, 3)):
        service = rng.choice(sorted(services))
        roles: dict[str, Any] = {}
        for role_name in services[service]:
            if rng.random() < 0.8:
                chosen = rng.sample(machines, rng.randint(0, len(machines)))
                roles[role_name] = {"machines": {m: ({"settings": _settings_for(service, role_name, rng)}
                                                     if rng.random() < 0.5 else {}) for m in chosen}}  # fmt: skip
                if rng.random() < 0.3:
                    roles[role_name]["tags"] = rng.sample(["all", "web", "db"], 1)
                if rng.random() < 0.5:
                    roles[role_name]["settings"] = _settings_for(service, role_name, rng)
        data["instances"][f"{service}-{index}"] = {"module": {"name": service}, "roles": roles}
    return data


# -- text mutations -----------------------------------------------------------------------------


def mutate_text(text: str, rng: random.Random) -> str:
    pos = rng.randint(0, len(text))
    lines = text.split("\n")
    op = rng.randrange(11)
    if op == 0 and text:
        return text[:pos] + rng.choice([*TOKENS, "x", "0", " "])[0] + text[pos + 1 :]
    if op == 1:
        return text[:pos] + rng.choice(TOKENS) + text[pos:]
    if op == 2:
        return text[:pos] + text[pos + rng.randint(1, 30) :]
    if op == 3 and lines:
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
        return "\n".join(lines)
    if op == 4 and lines:
        del lines[rng.randrange(len(lines))]
        return "\n".join(lines)
    if op == 5 and len(lines) > 1:
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if op == 6:
        return text[:pos]
    if op == 7:
        start = rng.randint(0, len(text))
        span = text[start : start + rng.randint(1, 200)]
        return text[:pos] + span * rng.choice([1, 2, 50]) + text[pos:]
    if op == 8:
        n = rng.choice([10, 60, 200, 3000])
        deep = rng.choice(["[" * n + "]" * n, "{a=" * n + "1" + "}" * n, ".".join(["k"] * n) + " = 1\n",
                           '{"a":' * n + "1" + "}" * n, "[" + ".".join(["t"] * n) + "]\n"])  # fmt: skip
        return text[:pos] + deep + text[pos:]
    if op == 9:
        return text[:pos] + rng.choice(["9" * rng.choice([19, 20, 400, 4400]), "-" + "9" * 25, "1e999"]) + text[pos:]
    words = [w for w in KEYS + STRINGS if w and w in text]
    if words:
        word = rng.choice(words)
        return text.replace(word, random_string(rng), rng.choice([1, -1]))
    return text + rng.choice(TOKENS)


# -- cases ----------------------------------------------------------------------------------------


@dataclass
class Case:
    index: int
    kind: str
    seed: str
    files: dict[str, bytes]  # relative path → content; a path ending in "/" is a folder
    template: str | None = None  # folder whose vars/ and keys/ are copied in

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "kind": self.kind, "seed": self.seed, "template": self.template,
            "files": {k: base64.b64encode(v).decode() for k, v in self.files.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Case:
        files = {k: base64.b64decode(v) for k, v in data["files"].items()}
        return cls(data["index"], data["kind"], data["seed"], files, data["template"])


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8 on disk


def _to_toml(data: Any) -> str | None:
    import tomlkit

    try:
        return tomlkit.dumps(data)
    except Exception:  # None, non-string keys, …: TOML cannot say it
        return None


def _to_json(data: Any, rng: random.Random) -> str:
    return json.dumps(data, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5)


def _serialise(data: Any, rng: random.Random, name: str | None = None) -> tuple[str, bytes]:
    if name != "inventory.json" and (name == "clan.toml" or rng.random() < 0.6):
        text = _to_toml(data)
        if text is not None:
            return "clan.toml", _encode(text)
    return "inventory.json", _encode(_to_json(data, rng))


def _split(data: Any, rng: random.Random) -> dict[str, bytes]:
    """The inventory over two sources: a second one that overlaps or conflicts with the first."""
    if not isinstance(data, dict) or not data:
        return dict([_serialise(data, rng)])
    second: dict[str, Any] = {}
    for key in rng.sample(list(data), rng.randint(1, len(data))):
        value = copy.deepcopy(data[key])
        second[key] = mutate_structure(value, rng) if rng.random() < 0.5 else value
    first = {k: v for k, v in data.items() if rng.random() < 0.7 or k == "meta"}
    return {
        "clan.toml": _encode(_to_toml(first) or '[meta]\nname = "split"\n'),
        "inventory.json": _encode(_to_json(second, rng)),
    }


def make_case(index: int, seeds: list[Seed], master: int) -> Case:
    rng = random.Random(f"{master}:{index}")
    seed = seeds[0] if rng.random() < 0.4 else rng.choice(seeds)
    template = str(seed.template) if seed.template else None
    roll = rng.random()
    files: dict[str, bytes]
    if roll < 0.25:
        kind, text = "toml-text", seed.toml
        for _ in range(rng.choice([1, 1, 1, 2, 4])):
            text = mutate_text(text, rng)
        files = {"clan.toml": _encode(text)}
    elif roll < 0.4:
        kind, text = "json-text", _to_json(seed.data, rng)
        for _ in range(rng.choice([1, 1, 1, 2, 4])):
            text = mutate_text(text, rng)
        files = {"inventory.json": _encode(text)}
    elif roll < 0.75:
        kind, data = "interface", interface_case(seed, rng)
        if seed.name != "quickstart":
            template = None
        if rng.random() < 0.3:
            data = mutate_structure(data, rng)
        files = dict([_serialise(data, rng)])
    elif roll < 0.82:
        kind, data = "gentle", copy.deepcopy(seed.data)
        for _ in range(rng.choice([1, 1, 2])):
            data = _gentle(data, _paths(data), rng)
        files = dict([_serialise(data, rng)])
    elif roll < 0.93:
        kind, data = "structural", copy.deepcopy(seed.data)
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            data = mutate_structure(data, rng)
        files = _split(data, rng) if rng.random() < 0.25 else dict([_serialise(data, rng)])
    else:
        kind, template = "random", None
        value = random_value(rng)
        if rng.random() < 0.7:
            value = {"meta": {"name": random_string(rng) if rng.random() < 0.2 else "rnd"}, random_key(rng): value}
        files = dict([_serialise(value, rng)])
    if rng.random() < 0.15 and kind not in ("interface", "gentle"):
        machines = list(seed.data.get("machines", {})) if isinstance(seed.data.get("machines"), dict) else []
        names = [*machines, "extra", "UPPER", "-dash", ".hidden", "a b", "ünï"]
        for name in rng.sample(names, rng.randint(1, 3)):
            files[f"machines/{name}/"] = b""
    return Case(index, kind, seed.name, files, template)
