"""Finding service modules: bundled library, the clan's own `services/`, and inputs (R2.1–R2.3).

A provider is a source of modules (a folder of `.py` files, or a Python distribution); the
registry maps `module.input` to a provider: null → pyclan's bundled library, "self" → the
clan's `services/` folder, any other name → a declared input. A module's name is its file stem,
with `_` and `-` interchangeable (`hello_world.py` provides `hello-world`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from pyclan.errors import ClanError, Problem, did_you_mean
from pyclan.services.library._unavailable import unavailable_reason
from pyclan.services.service import Service

BUNDLED_LABEL = "<clan-core>"
LIBRARY_DIR = Path(__file__).parent / "library"


def module_name_of(path: Path) -> str:
    return (path.stem if path.suffix == ".py" else path.name).replace("_", "-")


def checked_service(obj: object, where: str, expected: str) -> Service:
    """`obj` must be a `Service` with at least one role (R4.8) and well-typed constraints (R6.2);
    `expected` says what was wanted."""
    if not isinstance(obj, Service):
        raise ClanError.single("service-error", where, expected)
    if not obj.roles:
        raise ClanError.single("service-error", where, f"Role behavior of service '{obj.name}' must be defined.")
    problems = constraint_problems(obj, where)
    if problems:
        raise ClanError(problems)
    return obj


_POSITIVE = "null or (positive integer, meaning >0)"
_UNSIGNED = "null or (unsigned integer, meaning >=0)"


def constraint_problems(service: Service, where: str) -> list[Problem]:
    """R6.2: `maxInstances` and `maxMachines` are null or positive, `minMachines` null or unsigned."""
    checks: list[tuple[str, object, int, str]] = [
        ("manifest.constraints.maxInstances", service.constraints.max_instances, 1, _POSITIVE)
    ]
    for role in sorted(service.constraints.roles):
        rule = service.constraints.roles[role]
        base = f"manifest.constraints.roles.{role}"
        checks.append((f"{base}.minMachines", rule.min_machines, 0, _UNSIGNED))
        checks.append((f"{base}.maxMachines", rule.max_machines, 1, _POSITIVE))
    problems: list[Problem] = []
    for option, value, least, description in checks:
        if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= least):
            continue
        problems.append(
            Problem(
                "service-error",
                option,
                f"A definition for option `{option}' of service '{service.name}' is not of type "
                f"`{description}'. Definition values:\n- In `{where}': {value!r}",
                file=where,
                hint="use None for no limit"
                + ("" if least == 0 else ", or a limit of at least 1 (0 would forbid the service or role)"),
            )
        )
    return problems


def _service_of(module: ModuleType, where: str) -> Service:
    return checked_service(
        getattr(module, "service", None),
        where,
        "a service module must define `service = Service(...)` (pyclan.services.Service)",
    )


def load_error(where: str, exc: BaseException) -> ClanError:
    """Loading user or third-party code failed: name the file and line, no traceback."""
    frames = traceback.extract_tb(exc.__traceback__)
    inside = [f for f in frames if f.filename.endswith(".py") and "importlib" not in f.filename]
    at = f" (at {inside[-1].filename}:{inside[-1].lineno})" if inside else ""
    return ClanError.single(
        "service-error", where, f"loading the service module failed: {type(exc).__name__}: {exc}{at}"
    )


@dataclass
class FolderProvider:
    """Service modules in a folder: `<name>.py` or `<name>/__init__.py` files."""

    label: str
    folder: Path
    package: str | None = None  # import as `package.<stem>` (bundled library) instead of by path
    _cache: dict[str, Service] = field(default_factory=dict)

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        if not self.folder.is_dir():
            return found
        for entry in sorted(self.folder.iterdir()):
            if entry.name.startswith(("_", ".")):
                continue
            if entry.suffix == ".py" or (entry.is_dir() and (entry / "__init__.py").is_file()):
                found[module_name_of(entry)] = entry
        return found

    def names(self) -> list[str]:
        return sorted(self._files())

    def origin(self, name: str) -> str:
        path = self._files().get(name)
        return str(path) if path else str(self.folder)

    def load(self, name: str) -> Service:
        if name in self._cache:
            return self._cache[name]
        path = self._files().get(name)
        if path is None:
            raise KeyError(name)
        where = str(path)
        try:
            if self.package is not None and self.folder == LIBRARY_DIR:
                module = importlib.import_module(f"{self.package}.{path.stem}")
            else:
                module = _import_path(path, self.label)
        except ClanError:
            raise
        except Exception as exc:  # a user's module may raise anything while loading
            raise load_error(where, exc) from None
        service = _service_of(module, where)
        self._cache[name] = service
        return service


def _import_path(path: Path, label: str) -> ModuleType:
    file = path / "__init__.py" if path.is_dir() else path
    digest = hashlib.sha1(f"{label}:{file.resolve()}".encode()).hexdigest()[:12]
    mod_name = f"pyclan_ext_{digest}_{path.stem.replace('-', '_')}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(
        mod_name, file, submodule_search_locations=[str(path)] if path.is_dir() else None
    )
    if spec is None or spec.loader is None:
        raise ClanError.single("service-error", str(path), "cannot import this file as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


class ServiceProvider:
    """Protocol-like base for providers that are not folders (e.g. Python distributions)."""

    label: str

    def names(self) -> list[str]:
        raise NotImplementedError

    def origin(self, name: str) -> str:
        raise NotImplementedError

    def load(self, name: str) -> Service:
        raise NotImplementedError


Provider = FolderProvider | ServiceProvider


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    input: str | None
    origin: str


@dataclass
class ServiceRegistry:
    """Maps `module.input` to providers. Key None is the bundled library."""

    providers: dict[str | None, Provider]

    @classmethod
    def for_clan(
        cls,
        clan_dir: Path | None,
        inputs: Mapping[str, Provider] | None = None,
        bundled: Provider | None = None,
    ) -> ServiceRegistry:
        library = bundled or FolderProvider(BUNDLED_LABEL, LIBRARY_DIR, package="pyclan.services.library")
        providers: dict[str | None, Provider] = {None: library}
        if clan_dir is not None:
            providers["self"] = FolderProvider("self", clan_dir / "services")
        extra = dict(inputs or {})
        providers.update(extra)
        if "clan-core" not in providers:
            providers["clan-core"] = library
        return cls(providers=providers)

    def input_names(self) -> list[str]:
        return sorted(k for k in self.providers if k is not None)

    def resolve(self, name: str, input_name: str | None, path: str) -> Service:
        """The service for `module = {name, input}` at inventory `path`, or a ClanError (R2.2)."""
        provider = self.providers.get(input_name)
        if provider is None:
            choices = "\n".join(f"  - {n}" for n in self.input_names())
            hint = did_you_mean(input_name or "", self.input_names())
            raise ClanError(
                Problem(
                    "unknown-input",
                    f"{path}.module.input",
                    f"Flake doesn't provide input with name '{input_name}'. "
                    f"Choose one of the following inputs:\n{choices}",
                    hint=(hint + " " if hint else "")
                    + f'or remove the line `module.input = "{input_name}"` to use a bundled module, '
                    "or declare it under [inputs]",
                )
            )
        available = provider.names()
        if not available and input_name not in (None, "self"):
            raise ClanError.single(
                "unknown-module",
                f"{path}.module.input",
                f"flake input '{input_name}' doesn't provide clan-module with name '{name}'. "
                f"flake input '{input_name}' doesn't export any clan services.",
                hint="a git or path input provides services as .py modules in its `services/` folder; "
                "a package input by entry points in the group `pyclan.services`",
            )
        key = name.replace("_", "-")
        if key not in available and provider is self.providers[None] and (reason := unavailable_reason(key)):
            raise ClanError.single(
                "unknown-module",
                f"{path}.module.name",
                f"Clan service '{key}' is not available in pyclan on Debian: {reason}",
                hint="remove the instance, or provide a replacement service of your own (module.input = \"self\")",
            )
        if key not in available:
            owner = "clan-core" if input_name is None else f"flake input '{input_name}'"
            suggestion = did_you_mean(key, available)
            listing = ", ".join(available) or "(none)"
            raise ClanError.single(
                "unknown-module",
                f"{path}.module.name",
                f"{owner} doesn't provide clan-module with name '{name}'. Available: {listing}",
                hint=(suggestion + "\n  " if suggestion else "")
                + "Remove `module.input` (or set module.input = null) to use a bundled (clan-core) module; "
                'set `module.input = "self"` if the module is defined in your own services/ folder; '
                'set `module.input = "<input>"` for a module from a declared input',
            )
        return provider.load(key)

    def entries(self) -> list[ServiceEntry]:
        seen: list[ServiceEntry] = []
        for input_name in [None, *self.input_names()]:
            provider = self.providers[input_name]
            if input_name == "clan-core" and provider is self.providers[None]:
                continue
            for name in provider.names():
                seen.append(ServiceEntry(name=name, input=input_name, origin=provider.origin(name)))
        return seen


def group_id(input_name: str | None, module_name: str) -> str:
    """The service identity `<input>-<name>` (R3.1)."""
    return f"{BUNDLED_LABEL if input_name is None else input_name}-{module_name}"

