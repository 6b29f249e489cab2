"""Finds rules: the built-in rule package and third-party plugins.

A rule is a module that carries its identity constants (``NAME``, ``CODE``,
``SEVERITY``, ``SCOPE``, optional ``OPTIONS``, ``OPTION_CONSTRAINTS``,
``DEFAULT_ENABLED`` and ``REPRO``), its documentation (the module docstring)
and a ``check(record, ctx)`` generator.  Two doors:

- A rule *package* (entry-point group ``qcow2lint.rule_packages``; the
  built-in rules in ``rules/``, installed as ``qcow2lint_rules``, are one):
  every ``*.py`` in the package whose name does not start with ``_`` is a
  rule, named after its file.  These modules are *read*, not imported: the
  identity constants must be literals, read with :mod:`ast`, and ``SCOPE``
  names a record class.  The module is imported the first time its
  ``check`` runs, so listing rules imports neither numpy nor any rule.
  What was read is cached per file, keyed by (path, mtime_ns, size).
- A rule *plugin* (entry-point group ``qcow2lint.rules``): one entry point
  per rule, whose name is the rule's NAME; it is imported and validated.

Discovery, reading and validation are separate steps so that each failure
names its plugin or file.

Option metadata.  ``OPTIONS`` maps each option to its default; the
default's type is the option's type (bool, int, float -- an int is accepted
too -- or str).  ``OPTION_CONSTRAINTS`` narrows an option further, as a
literal dict of dicts with the keys ``choices`` (a tuple of the allowed
values), ``minimum`` and ``maximum`` (inclusive bounds of a number)::

    OPTIONS = {"reading": "qemu", "max-virtual-size": 0}
    OPTION_CONSTRAINTS = {"reading": {"choices": ("qemu", "spec")},
                          "max-virtual-size": {"minimum": 0}}

The configuration is checked against both when it is read, and
:func:`option_schema` gives them as JSON Schema keywords.  ``DEFAULT_ENABLED =
False`` makes a rule off unless a configuration (the ``pedantic`` preset,
say) enables it: for rules that describe legal layouts QEMU itself writes,
or policies for untrusted images.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from qcow2lint.aliases import current_name
from qcow2lint.findings import Severity
from qcow2lint.recordtype import Record

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

GROUP = "qcow2lint.rules"
PACKAGE_GROUP = "qcow2lint.rule_packages"
#: The record types a rule may inspect, by class name: the engine hands a
#: rule every record of its SCOPE in the image.  (Names, so that listing the
#: rules imports neither the records nor the analysis.)
SCOPES: tuple[str, ...] = (
    "Image",
    "Header",
    "ExtensionArea",
    "HeaderExtension",
    "BitmapsExtension",
    "EncryptionArea",
    "BitmapDirectoryEntry",
    "BitmapTable",
    "L1Table",
    "L2Tables",
    "RefcountTable",
    "RefcountBlock",
    "SnapshotTable",
    "SnapshotEntry",
    "ReadProblem",
    "CompressedCluster",
    "RefcountCheck",
)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
CODE_PATTERN = re.compile(r"^[A-Z]+[0-9]{3,5}$")
#: The engine's own pseudo-rule for a rule that crashed.
INTERNAL_ERROR = "internal-error"
INTERNAL_ERROR_CODE = "Q0000"


class RegistryError(Exception):
    """A rule plugin cannot be loaded or does not follow the rule contract."""


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen(repr=False)
class Rule(Record):
    """A validated rule.  ``scope`` is the name of the record class it judges."""

    name: str
    code: str
    severity: Severity
    scope: str
    check: Callable[..., Iterable[Any]] = attrs.field(eq=False)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda o: MappingProxyType(dict(o)))
    doc: str = ""
    origin: str = ""
    #: Per option: ``choices``, ``minimum``, ``maximum`` (see the module docstring).
    option_constraints: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, converter=lambda o: MappingProxyType({k: MappingProxyType(dict(v)) for k, v in o.items()})
    )
    #: False for a rule that runs only when a configuration enables it.
    default_enabled: bool = True
    #: Shell commands (qemu-img, qemu-io) that make an image ``repro.qcow2``
    #: this rule flags: the optional ``REPRO`` constant, shown on the
    #: rule's page.  Only verified reproductions (tests/test_rule_pages.py
    #: runs every one).
    repro: str = ""
    #: The messages with which QEMU refuses to open an image this rule flags
    #: (the rule module's literal ``QEMU_REFUSES``; rendered in docs/rules.md).
    qemu_refuses: tuple[str, ...] = attrs.field(default=(), converter=_strings)

    @property
    def summary(self) -> str:
        """The first line of the rule's documentation."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


def discover(group: str = GROUP) -> list[EntryPoint]:
    """Every entry point in ``group``, sorted by name."""
    from importlib.metadata import entry_points

    return sorted(entry_points(group=group), key=lambda ep: ep.name)


class FoundEntry(NamedTuple):
    """An entry point of ours as the cached index holds it: what
    :class:`importlib.metadata.EntryPoint` offers, with the distribution's
    name read once (reading it parses the METADATA file)."""

    name: str
    value: str
    group: str
    dist: str = ""

    def load(self) -> Any:
        """Import and return the entry point's target, as ``EntryPoint.load`` does."""
        from importlib.metadata import EntryPoint

        return EntryPoint(self.name, self.value, self.group).load()


_DIST_NAMES: dict[int, str] = {}


def _dist_name(entry: EntryPoint | FoundEntry) -> str:
    """The distribution's name; reading it parses METADATA, so once per dist."""
    if isinstance(entry, FoundEntry):
        return entry.dist
    if entry.dist is None:
        return ""
    key = id(entry.dist)
    if key not in _DIST_NAMES:
        _DIST_NAMES[key] = entry.dist.name
    return _DIST_NAMES[key]


def load(entry: EntryPoint | FoundEntry) -> Rule:
    """Load one entry point and validate it as a rule."""
    dist = _dist_name(entry)
    origin = entry.value + (f" ({dist})" if dist else "")
    try:
        target = entry.load()
    except Exception as exc:  # a broken plugin must name itself, not crash us
        raise RegistryError(f"rule plugin {entry.name!r} from {origin} failed to load: {exc!r}") from None
    return validate(target, entry.name, origin)


#: The option types, by the type of the default, as JSON Schema names them.
OPTION_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
CONSTRAINT_KEYS = ("choices", "minimum", "maximum")


def option_type_ok(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of the option whose default is ``default``
    (an int is accepted for a float option; a bool is never a number)."""
    expected = type(default)
    return type(value) is expected or (expected is float and type(value) is int)


def constraint_problem(value: Any, constraint: Mapping[str, Any]) -> str | None:
    """Why ``value`` breaks ``constraint`` (a ``choices``/``minimum``/``maximum``
    dict), or None.  The type must have been checked first."""
    choices = constraint.get("choices")
    if choices is not None and value not in choices:
        return "must be one of " + ", ".join(map(repr, choices))
    low, high = constraint.get("minimum"), constraint.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            return f"must be >= {low}"
        return f"must be <= {high}" if low is None else f"must be in {low}..{high}"
    return None


def _check_constraints(fail: Callable[[str], RegistryError], options: Mapping[str, Any], constraints: Any) -> None:
    """OPTION_CONSTRAINTS must fit OPTIONS: known options, known keys, choices
    of the option's type, numeric bounds on numbers, the default allowed."""
    for option, default in options.items():
        if type(default) not in OPTION_TYPES:
            raise fail(f"OPTIONS[{option!r}]: the default must be a bool, int, float or str, got {default!r}")
    if not isinstance(constraints, Mapping):
        raise fail("OPTION_CONSTRAINTS must map option names to {choices, minimum, maximum} dicts")
    for option, constraint in constraints.items():
        if option not in options:
            raise fail(f"OPTION_CONSTRAINTS names {option!r}, which is not in OPTIONS")
        if not isinstance(constraint, Mapping) or not constraint or not set(constraint) <= set(CONSTRAINT_KEYS):
            raise fail(f"OPTION_CONSTRAINTS[{option!r}] must be a dict with keys among {', '.join(CONSTRAINT_KEYS)}")
        default = options[option]
        choices = constraint.get("choices")
        if choices is not None and (
            not isinstance(choices, tuple | list) or not choices or not all(option_type_ok(c, default) for c in choices)
        ):
            raise fail(f"OPTION_CONSTRAINTS[{option!r}]: choices must be a non-empty tuple of {type(default).__name__}")
        for bound in ("minimum", "maximum"):
            if bound in constraint and (
                type(default) not in (int, float) or type(constraint[bound]) not in (int, float)
            ):
                raise fail(f"OPTION_CONSTRAINTS[{option!r}]: {bound} needs a number option and a number")
        problem = constraint_problem(default, constraint)
        if problem:
            raise fail(f"OPTION_CONSTRAINTS[{option!r}]: the default {default!r} {problem}")


def option_schema(rule: Rule) -> dict[str, dict[str, Any]]:
    """Each option of ``rule`` as a JSON Schema: ``type``, ``default`` and,
    when declared, ``enum``, ``minimum``, ``maximum``."""
    schema: dict[str, dict[str, Any]] = {}
    for option, default in rule.options.items():
        entry: dict[str, Any] = {"type": OPTION_TYPES.get(type(default), "string"), "default": default}
        constraint = rule.option_constraints.get(option, {})
        if "choices" in constraint:
            entry["enum"] = list(constraint["choices"])
        for bound in ("minimum", "maximum"):
            if bound in constraint:
                entry[bound] = constraint[bound]
        schema[option] = entry
    return schema


def _check_identity(
    fail: Callable[[str], RegistryError],
    name: Any,
    expected: str,
    code: Any,
    severity: Any,
    options: Any,
    constraints: Any = None,
    default_enabled: Any = True,
) -> Severity:
    """The contract's checks shared by both doors; returns the parsed severity."""
    if name != expected or not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise fail(f"NAME must be the entry point's name in kebab-case, got {name!r}")
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise fail(f"CODE must look like 'Q0101', got {code!r}")
    try:
        parsed = Severity.parse(severity)
    except (ValueError, AttributeError) as exc:
        raise fail(f"SEVERITY: {exc}") from None
    if not isinstance(options, Mapping) or not all(isinstance(k, str) and k != "level" for k in options):
        raise fail("OPTIONS must map option names (not 'level' or 'enabled') to defaults")
    if "enabled" in options:
        raise fail("OPTIONS must map option names (not 'level' or 'enabled') to defaults")
    _check_constraints(fail, options, {} if constraints is None else constraints)
    if not isinstance(default_enabled, bool):
        raise fail(f"DEFAULT_ENABLED must be True or False, got {default_enabled!r}")
    return parsed


def _check_refuses(fail: Callable[[str], RegistryError], refuses: Any) -> tuple[str, ...]:
    """``QEMU_REFUSES``: a tuple of non-empty strings (QEMU's messages)."""
    if not isinstance(refuses, tuple) or not all(isinstance(m, str) and m for m in refuses):
        raise fail(f"QEMU_REFUSES must be a tuple of QEMU's messages (strings), got {refuses!r}")
    return refuses


def validate(target: Any, entry_name: str, origin: str = "") -> Rule:
    """Check that ``target`` (an imported plugin) follows the rule contract and wrap it."""

    def fail(problem: str) -> RegistryError:
        return RegistryError(f"rule plugin {entry_name!r} from {origin}: {problem}")

    options = getattr(target, "OPTIONS", {})
    constraints = getattr(target, "OPTION_CONSTRAINTS", {})
    default_enabled = getattr(target, "DEFAULT_ENABLED", True)
    severity = _check_identity(
        fail,
        getattr(target, "NAME", None),
        entry_name,
        getattr(target, "CODE", None),
        getattr(target, "SEVERITY", ""),
        options,
        constraints,
        default_enabled,
    )
    scope = getattr(target, "SCOPE", None)
    if not isinstance(scope, type) or scope.__name__ not in SCOPES or not scope.__module__.startswith("qcow2lint."):
        raise fail(f"SCOPE must be one of {', '.join(SCOPES)}, got {scope!r}")
    check = getattr(target, "check", None)
    if not callable(check):
        raise fail("it has no check(record, ctx) function")
    doc = getattr(target, "__doc__", "") or ""
    refuses = _check_refuses(fail, getattr(target, "QEMU_REFUSES", ()))
    repro = getattr(target, "REPRO", "")
    if not isinstance(repro, str):
        raise fail("REPRO must be a string of shell commands")
    return Rule(
        entry_name,
        target.CODE,
        severity,
        scope.__name__,
        check,
        options,
        doc,
        origin,
        option_constraints=constraints,
        default_enabled=default_enabled,
        repro=repro,
        qemu_refuses=refuses,
    )


# ---------------------------------------------------------------------------
# Rule packages: modules read with ast, imported on first use


def _import_rule_module(name: str, path: str, code: Any = None) -> Any:
    """Import the rule module ``name`` from ``path``, the file the registry
    read: an ordinary import minus the search of every finder on
    ``sys.meta_path`` for it, and, with ``code`` (the module's code object
    from the registry's cache, compiled from that very file), minus reading
    its own bytecode file too.  A small image's check imports ~100 rule
    modules: one cache read instead of ~100 file lookups and reads is most of
    their cost (issue 13)."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    import importlib
    import importlib.util

    package, _, stem = name.rpartition(".")
    parent = importlib.import_module(package)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return importlib.import_module(name)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        if code is None:
            spec.loader.exec_module(module)
        else:
            exec(code, module.__dict__)  # what exec_module does with the code it reads
    except BaseException:
        sys.modules.pop(name, None)
        raise
    setattr(parent, stem, module)
    return module


class LazyCheck:
    """A rule module's ``check``, imported the first time it is called
    (from ``code``, its compiled code, when the registry's cache has it)."""

    __slots__ = ("module", "path", "code", "_check")

    def __init__(self, module: str, path: str, code: Any = None) -> None:
        self.module = module
        self.path = path
        self.code = code
        self._check: Callable[..., Iterable[Any]] | None = None

    def load(self) -> Callable[..., Iterable[Any]]:
        """Import the module (once) and return its ``check``."""
        if self._check is None:
            try:
                check = getattr(_import_rule_module(self.module, self.path, self.code), "check", None)
            except Exception as exc:
                raise RegistryError(f"rule file {self.path} failed to import: {exc!r}") from None
            if not callable(check):
                raise RegistryError(f"rule file {self.path}: check is not a function")
            self._check = check
        return self._check

    def __call__(self, record: Any, ctx: Any) -> Iterable[Any]:
        return self.load()(record, ctx)

    def __reduce__(self) -> tuple[Any, ...]:
        return (LazyCheck, (self.module, self.path))

    def __repr__(self) -> str:
        return f"LazyCheck({self.module!r})"


_LITERALS = ("NAME", "CODE", "SEVERITY", "OPTIONS", "OPTION_CONSTRAINTS", "DEFAULT_ENABLED", "REPRO", "QEMU_REFUSES")


def read_rule_file(path: str) -> dict[str, Any]:
    """A rule module's identity, read from its source without importing it.

    Returns ``doc`` (the docstring, or None), the literals NAME, CODE,
    SEVERITY, OPTIONS, OPTION_CONSTRAINTS, DEFAULT_ENABLED, REPRO and QEMU_REFUSES (when assigned), ``SCOPE`` (the name of the class
    it is bound to) and ``check`` (whether the module binds that name).
    Raises RegistryError naming the file when a constant is not a literal.
    """
    import ast

    with open(path, "rb") as file:
        source = file.read()
    try:
        tree = ast.parse(source, path)
    except (SyntaxError, ValueError) as exc:
        raise RegistryError(f"rule file {path} cannot be parsed: {exc}") from None
    imported: dict[str, str] = {}  # local name -> the imported name
    values: dict[str, ast.expr] = {}
    bound: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imported[alias.asname or alias.name] = alias.name
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    values[target.id] = node.value
                    bound.add(target.id)
    meta: dict[str, Any] = {"doc": ast.get_docstring(tree, clean=False), "check": "check" in bound}
    for key in _LITERALS:
        if key in values:
            try:
                meta[key] = ast.literal_eval(values[key])
            except ValueError:
                raise RegistryError(
                    f"rule file {path}: {key} must be a literal (it is read without importing the module), "
                    f"got {ast.unparse(values[key])}"
                ) from None
    scope = values.get("SCOPE")
    if isinstance(scope, ast.Name):
        meta["SCOPE"] = imported.get(scope.id, scope.id)
    elif isinstance(scope, ast.Attribute):
        meta["SCOPE"] = scope.attr
    elif scope is not None:
        meta["SCOPE"] = ast.unparse(scope)
    return meta


_CACHE_VERSION = 5  # 2: OPTION_CONSTRAINTS and DEFAULT_ENABLED; 3: REPRO; 4: QEMU_REFUSES; 5: code


def _cache_path(stem: str) -> str | None:
    """``stem`` in qcow2lint's cache directory (None when there is none)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    return os.path.join(base, "qcow2lint", f"{stem}.{sys.implementation.cache_tag}.marshal")


def _crc(text: str) -> str:
    import zlib

    return f"{zlib.crc32(text.encode('utf-8', 'surrogateescape')):08x}"


def _cache_file(directory: str) -> str | None:
    return _cache_path(f"rules-{_crc(os.path.abspath(directory))}")


def _load_marshal(path: str | None) -> Any:
    """What ``path`` holds, or None when it cannot be read."""
    if path is None:
        return None
    import marshal

    try:
        with open(path, "rb") as file:
            return marshal.loads(file.read())  # one read: marshal.load(file) reads object by object
    except (OSError, EOFError, ValueError, TypeError):
        return None


def _dump_marshal(path: str | None, data: Any) -> None:
    if path is None:
        return
    import marshal

    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(temporary, "wb") as file:
            marshal.dump(data, file)
        os.replace(temporary, path)
    except (OSError, ValueError):  # a cache that cannot be written is no cache
        try:
            os.unlink(temporary)
        except OSError:
            pass


def _read_cache(path: str | None) -> dict[str, Any]:
    data = _load_marshal(path)
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION or not isinstance(data.get("files"), dict):
        return {}
    return data["files"]


def _write_cache(path: str | None, files: dict[str, Any]) -> None:
    _dump_marshal(path, {"version": _CACHE_VERSION, "files": files})


def read_package(directory: str, use_cache: bool = True) -> list[tuple[str, dict[str, Any], Any]]:
    """``(module stem, read_rule_file(...), code)`` for every rule file in
    ``directory``; ``code`` is the module's compiled code when the cache is
    used (kept with what was read, under the file's mtime and size), else None."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".py") and not n.startswith("_"))
    except OSError as exc:
        raise RegistryError(f"rule package {directory} cannot be listed: {exc}") from None
    cache_path = _cache_file(directory) if use_cache else None
    cached = _read_cache(cache_path)
    fresh: dict[str, Any] = {}
    found = []
    for name in names:
        path = os.path.join(directory, name)
        try:
            status = os.stat(path)
        except OSError as exc:
            raise RegistryError(f"rule file {path} cannot be read: {exc}") from None
        key = [status.st_mtime_ns, status.st_size]
        entry = cached.get(name)
        if isinstance(entry, list) and len(entry) == 4 and entry[:2] == key and isinstance(entry[2], dict):
            meta, code = entry[2], entry[3]
        else:
            meta = read_rule_file(path)
            code = _compile_rule_file(path) if use_cache else None
        fresh[name] = [*key, meta, code]
        found.append((name[:-3], meta, code))
    if use_cache and fresh != cached:
        _write_cache(cache_path, fresh)
    return found


def _compile_rule_file(path: str) -> Any:
    """The code object of a rule file, None when it does not compile (its
    import then fails the usual way, naming the file)."""
    try:
        with open(path, "rb") as file:
            return compile(file.read(), path, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return None


def from_source(meta: Mapping[str, Any], module: str, path: str, origin: str, code: Any = None) -> Rule:
    """Validate what :func:`read_rule_file` read and wrap it as a rule."""
    expected = os.path.basename(path).removesuffix(".py").replace("_", "-")

    def fail(problem: str) -> RegistryError:
        return RegistryError(f"rule file {path}: {problem}")

    options = meta.get("OPTIONS", {})
    constraints = meta.get("OPTION_CONSTRAINTS", {})
    default_enabled = meta.get("DEFAULT_ENABLED", True)
    name = meta.get("NAME")
    if name != expected:
        raise fail(f"NAME must be the file's name in kebab-case ({expected!r}), got {name!r}")
    severity = _check_identity(
        fail, name, expected, meta.get("CODE"), meta.get("SEVERITY", ""), options, constraints, default_enabled
    )
    scope = meta.get("SCOPE")
    if scope not in SCOPES:
        raise fail(f"SCOPE must be one of {', '.join(SCOPES)}, got {scope!r}")
    if not meta.get("check"):
        raise fail("it has no check(record, ctx) function")
    refuses = _check_refuses(fail, meta.get("QEMU_REFUSES", ()))
    repro = meta.get("REPRO", "")
    if not isinstance(repro, str):
        raise fail("REPRO must be a string of shell commands")
    return Rule(
        name,
        meta["CODE"],
        severity,
        scope,
        LazyCheck(module, path, code),
        options,
        meta.get("doc") or "",
        origin,
        option_constraints=constraints,
        default_enabled=default_enabled,
        repro=repro,
        qemu_refuses=refuses,
    )


def load_package(entry: EntryPoint | FoundEntry, use_cache: bool = True) -> list[Rule]:
    """Every rule of the rule package an entry point names, without importing it."""
    import importlib.util

    package = entry.value
    dist = _dist_name(entry)
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        spec, problem = None, repr(exc)
    else:
        problem = "not found"
    if spec is None or not spec.submodule_search_locations:
        raise RegistryError(f"rule package {entry.name!r} = {package!r} from {dist or '?'}: {problem}")
    rules = []
    for directory in spec.submodule_search_locations:
        for stem, meta, code in read_package(directory, use_cache):
            module = f"{package}.{stem}"
            origin = module + (f" ({dist})" if dist else "")
            rules.append(from_source(meta, module, os.path.join(directory, f"{stem}.py"), origin, code))
    return rules


# ---------------------------------------------------------------------------
# Entry points: an index cached per interpreter, valid while sys.path's
# distributions are the same

_INDEX_VERSION = 2  # 2: the state leaves out where each directory is
_INDEXES_KEPT = 8


def _distributions_state() -> list[Any] | None:
    """What proves a cached entry-point index still valid: for each
    ``sys.path`` entry, its ``*.dist-info`` / ``*.egg-info`` names with the
    mtime and size of their ``entry_points.txt`` (an archive on the path:
    its name, mtime and size).  Installing, removing or rewriting a
    distribution changes it; where a directory is does not (``python -m``
    puts the working directory on the path: any directory without a
    distribution gives the same state).  None when a finder other than the
    path finder can list distributions (then there is no index: always
    look)."""
    from importlib.machinery import PathFinder

    if any(finder is not PathFinder and hasattr(finder, "find_distributions") for finder in sys.meta_path):
        return None
    state: list[Any] = []
    for entry in sys.path:
        root = os.path.abspath(entry or ".")
        try:
            children = sorted(os.listdir(root))
        except NotADirectoryError:
            try:
                status = os.stat(root)
            except OSError:
                state.append([])
            else:
                state.append([root, status.st_mtime_ns, status.st_size])
            continue
        except (OSError, ValueError):
            state.append([])
            continue
        item: list[Any] = []
        for child in children:
            low = child.lower()
            if low.endswith((".dist-info", ".egg-info")) or low == "egg-info":
                try:
                    status = os.stat(os.path.join(root, child, "entry_points.txt"))
                except OSError:
                    item.append((child,))
                else:
                    item.append((child, status.st_mtime_ns, status.st_size))
        state.append(item)
    return state


def found_entries(groups: tuple[str, ...]) -> dict[str, list[FoundEntry]]:
    """Every entry point in each of ``groups``, sorted by name.

    Reading them through :mod:`importlib.metadata` costs more than the rest
    of listing the rules (the module, then every distribution's metadata),
    so what it found is cached, with :func:`_distributions_state` as the
    key: one file per interpreter, holding the last few indexes (a
    ``PYTHONPATH`` that comes and goes keeps both).
    """
    state = _distributions_state()
    path = None if state is None else _cache_path(f"entry-points-{_crc(sys.executable)}")
    cached = _load_marshal(path)
    kept = cached.get("indexes") if isinstance(cached, dict) and cached.get("version") == _INDEX_VERSION else None
    kept = kept if isinstance(kept, list) else []
    key = {"groups": list(groups), "state": state}
    rows = next((index["entries"] for index in kept if isinstance(index, dict) and index.get("key") == key), None)
    if not isinstance(rows, list):
        from importlib.metadata import entry_points

        everything = entry_points()
        rows = [
            (entry.name, entry.value, group, _dist_name(entry))
            for group in groups
            for entry in sorted(everything.select(group=group), key=lambda ep: ep.name)
        ]
        kept = [{"key": key, "entries": rows}, *kept[: _INDEXES_KEPT - 1]]
        _dump_marshal(path, {"version": _INDEX_VERSION, "indexes": kept})
    found: dict[str, list[FoundEntry]] = {group: [] for group in groups}
    for row in rows:
        entry = FoundEntry(*row)
        found[entry.group].append(entry)
    return found


@attrs.frozen(repr=False)
class Registry(Record):
    """Every rule, by name and by code."""

    rules: tuple[Rule, ...]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, key: str) -> Rule | None:
        """A rule by name or by code (a retired name or code gives the rule
        that reports its defect now: :mod:`qcow2lint.aliases`)."""
        key = current_name(key)
        for rule in self.rules:
            if key in (rule.name, rule.code):
                return rule
        return None


def load_registry(group: str = GROUP, package_group: str = PACKAGE_GROUP) -> Registry:
    """Read every rule package, load every plugin, and validate them all;
    names and codes must be unique."""
    found = found_entries((package_group, group))
    rules = []
    for entry in found[package_group]:
        rules += load_package(entry)
    rules += [load(entry) for entry in found[group]]
    seen: dict[str, Rule] = {}
    for rule in rules:
        for key in (rule.name, rule.code):
            if key in seen or key in (INTERNAL_ERROR, INTERNAL_ERROR_CODE):
                other = seen.get(key)
                raise RegistryError(
                    f"rule {rule.name!r} from {rule.origin} reuses {key!r}"
                    + (f" of rule {other.name!r} from {other.origin}" if other else " (reserved)")
                )
            seen[key] = rule
    return Registry(tuple(sorted(rules, key=lambda r: r.code)))
