"""Rule packages: every ``*.py`` in a rule package whose name does not start
with ``_`` is a rule, named after its file.

A rule file's declarations are *read*, not imported, so that listing the
rules imports neither numpy nor any rule: its identity constants must be
literals and ``SCOPE`` names a record class.  The module is imported the
first time its ``check`` runs (:class:`LazyCheck`).

Reading a file with :mod:`ast` costs a parse; the built-in rules' reading is
done once, by ``python -m qcow2lint.gen``, into the package's index
``_index.json``: for each rule file its size, its CRC-32 and what
:func:`read_rule_file` returns.  (JSON loads in one read whether or not
Python may write bytecode; the same data as a Python module takes 30 times
as long to compile as JSON takes to parse.)  The registry takes a file's
declarations from the index only when the file's size and CRC-32 are the
indexed ones; a file the index lacks or holds otherwise (a rule just added
or edited, the index not regenerated yet) is read with :mod:`ast`.  So an
edit is never answered from a stale index, and ``python -m qcow2lint.gen
--check`` names the stale index.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from qcow2lint.rulecontract import LITERALS, SCOPES, RegistryError, Rule, make_rule

#: The index's file in a rule package, and the shape of what it holds.
INDEX = "_index.json"
INDEX_FORMAT = 1


def rule_file_names(directory: str) -> list[str]:
    """The rule files in ``directory``, sorted."""
    try:
        return sorted(n for n in os.listdir(directory) if n.endswith(".py") and not n.startswith("_"))
    except OSError as exc:
        raise RegistryError(f"rule package {directory} cannot be listed: {exc}") from None


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise RegistryError(f"rule file {path} cannot be read: {exc}") from None


def fingerprint(source: bytes) -> tuple[int, int]:
    """What the index keeps to recognise a file: its size and CRC-32."""
    return len(source), zlib.crc32(source)


def read_rule_file(path: str, source: bytes | None = None) -> dict[str, Any]:
    """A rule module's identity, read from its source without importing it.

    Returns ``doc`` (the docstring, or None), ``check`` (whether the module
    binds that name), each of the :data:`~qcow2lint.rulecontract.LITERALS`
    the module assigns, and ``SCOPE`` (the name of the class it is bound
    to).  Raises RegistryError naming the file when a constant is not a
    literal.
    """
    import ast

    if source is None:
        source = _read_bytes(path)
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
    for key in LITERALS:
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


def _tuples(value: Any) -> Any:
    """``value`` read back from JSON, with each list a tuple again (rule
    literals use tuples; the index holds no declaration with a list)."""
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    if isinstance(value, dict):
        return {key: _tuples(item) for key, item in value.items()}
    return value


def index_text(directory: str) -> str:
    """The text of the index ``_index.json`` of the rule files in ``directory``:
    one line per file.  A file whose declarations JSON cannot hold exactly
    (a list, a number as a dict key) is left out: the registry reads it with ast."""
    import json

    lines = []
    for name in rule_file_names(directory):
        path = os.path.join(directory, name)
        source = _read_bytes(path)
        meta = read_rule_file(path, source)
        text = json.dumps(meta)
        if _tuples(json.loads(text)) == meta:
            lines.append(f"{json.dumps(name)}: [{', '.join(map(str, fingerprint(source)))}, {text}]")
    return f'{{"format": {INDEX_FORMAT}, "files": {{\n' + ",\n".join(lines) + "\n}}\n"


def _load_index(directory: str) -> dict[str, Any]:
    """The files of the index in ``directory``; empty when there is none or
    it is not one (a damaged index only costs the ast reading)."""
    import json

    try:
        with open(os.path.join(directory, INDEX), "rb") as file:
            index = json.loads(file.read())
    except (OSError, ValueError):
        return {}
    files = index.get("files") if isinstance(index, dict) and index.get("format") == INDEX_FORMAT else None
    return files if isinstance(files, dict) else {}


def read_package(directory: str) -> list[tuple[str, dict[str, Any]]]:
    """``(module stem, declarations)`` for every rule file in ``directory``:
    from the index where it holds the file as it is, else read with ast."""
    index = _load_index(directory)
    found = []
    for name in rule_file_names(directory):
        path = os.path.join(directory, name)
        source = _read_bytes(path)
        entry, meta = index.get(name), None
        if isinstance(entry, list) and len(entry) == 3 and tuple(entry[:2]) == fingerprint(source):
            meta = _tuples(entry[2])
        found.append((name[:-3], meta if isinstance(meta, dict) else read_rule_file(path, source)))
    return found


def _import_rule_module(name: str, path: str) -> Any:
    """Import the rule module ``name`` from ``path``, the file the registry
    read: an ordinary import minus the search of every finder on
    ``sys.meta_path`` for it."""
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
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    setattr(parent, stem, module)
    return module


class LazyCheck:
    """A rule module's ``check``, imported the first time it is called."""

    __slots__ = ("module", "path", "_check")

    def __init__(self, module: str, path: str) -> None:
        self.module = module
        self.path = path
        self._check: Callable[..., Iterable[Any]] | None = None

    def load(self) -> Callable[..., Iterable[Any]]:
        """Import the module (once) and return its ``check``."""
        if self._check is None:
            try:
                check = getattr(_import_rule_module(self.module, self.path), "check", None)
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


def from_source(meta: Mapping[str, Any], module: str, path: str, origin: str) -> Rule:
    """Validate what :func:`read_rule_file` read and wrap it as a rule."""

    def fail(problem: str) -> RegistryError:
        return RegistryError(f"rule file {path}: {problem}")

    scope = meta.get("SCOPE")
    return make_rule(
        meta,
        expected=os.path.basename(path).removesuffix(".py").replace("_", "-"),
        named_after="the file's name",
        scope=scope if scope in SCOPES else None,
        declared_scope=scope,
        check=LazyCheck(module, path) if meta.get("check") else None,
        doc=meta.get("doc") or "",
        origin=origin,
        fail=fail,
    )


def load_package(package: str, dist: str = "", entry_name: str = "") -> list[Rule]:
    """Every rule of the rule package ``package``, without importing it."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError) as exc:
        spec, problem = None, repr(exc)
    else:
        problem = "not found"
    if spec is None or not spec.submodule_search_locations:
        raise RegistryError(f"rule package {entry_name!r} = {package!r} from {dist or '?'}: {problem}")
    rules = []
    for directory in spec.submodule_search_locations:
        for stem, meta in read_package(directory):
            module = f"{package}.{stem}"
            origin = module + (f" ({dist})" if dist else "")
            rules.append(from_source(meta, module, os.path.join(directory, f"{stem}.py"), origin))
    return rules
