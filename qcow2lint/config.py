"""Configuration: presets, ``extends:``, per-rule levels and options,
per-file ignores, and where each effective value came from.

A configuration file looks like::

    extends: default            # or strict, or a path to another file
    max-findings-per-rule: 100  # per rule per image; 0 means no cap
    rules:
      header-padding-nonzero: disable
      l2-reserved-bits: {level: warning}
      Q0601: enable             # rules may be named by code too
    per-file-ignores:
      "fixtures/broken-*.qcow2": [l2-reserved-bits, Q0110]

The same keys may live in a ``[tool.qcow2lint]`` table of a
``pyproject.toml``.  Discovery searches from the working directory upwards;
in each directory it takes the first of ``.qcow2lint.yaml`` (or
``.qcow2lint.yml``), ``qcow2lint.yaml`` (or ``qcow2lint.yml``), and
``pyproject.toml`` *with* a ``[tool.qcow2lint]`` table (a ``pyproject.toml``
without the table is skipped).  Both spellings of one name in one directory
are an error: which of the two is meant cannot be guessed.

``per-file-ignores`` patterns are globs: ``*`` and ``?`` do not cross a
``/``, ``**`` matches any number of directories, ``[abc]`` a character
class.  A pattern matches an image when it matches, in posix form, the
image path as given on the command line (``./`` stripped), or that path
relative to the directory of the configuration file that defines the
pattern, or -- for a pattern without a ``/`` -- the image's file name.
Entries of an ``extends`` chain merge; a pattern repeated later replaces
the earlier list.

A rule is configured as ``enable``, ``disable`` or a mapping of ``level``,
``enabled`` and its options; a mapping enables the rule unless it says
``enabled: false``.  Some rules are off until a configuration enables them
(``DEFAULT_ENABLED = False``: legal layouts QEMU writes, policies for
untrusted images); the ``pedantic`` preset enables them all.

Every option value is checked when the configuration is read: its type (the
type of the default), and the rule's ``OPTION_CONSTRAINTS`` (choices,
minimum, maximum).  A key given twice in one mapping, and a rule named twice
in one file (by name and by code), are errors; the values of a key given
twice are both checked.  Every problem is one line naming the file, the
rule and the option; all the problems of a run are collected and raised
together as one ConfigError.

This module reads configuration files; :mod:`qcow2lint.selection` applies
the command line's selection on top, and :mod:`qcow2lint.configrender`
prints a configuration back as YAML.
"""

from __future__ import annotations

import os
import re
import reprlib
import stat
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs

from qcow2lint.findings import ImageReport, Severity
from qcow2lint.recordtype import Record
from qcow2lint.registry import Registry, Rule, constraint_problem, option_type_ok
from qcow2lint.text import format_size, one_line

PRESETS_DIR = Path(__file__).parent / "presets"
#: The files discovery looks for in each directory, in precedence order; the
#: names of one slot are two spellings of one file (both at once: an error).
DISCOVERY_NAMES = ((".qcow2lint.yaml", ".qcow2lint.yml"), ("qcow2lint.yaml", "qcow2lint.yml"), ("pyproject.toml",))
PYPROJECT = "pyproject.toml"
DEFAULT_MAX_FINDINGS = 100
TOP_LEVEL_KEYS = (
    "extends",
    "rules",
    "max-findings-per-rule",
    "warnings-are-errors",
    "per-file-ignores",
    "exclude",
    "docs-url",
)
#: An absolute URL (SARIF's helpUri must be one): a scheme, then no space.
ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
#: The source of a value nobody configured.
BUILTIN = "built-in default"
#: A configuration file larger than this is refused (the reference
#: configuration of every rule is about 40 KiB).
MAX_CONFIG_BYTES = 1 << 20
#: YAML nodes a configuration may hold, counting every alias as the whole
#: subtree it repeats: a "billion laughs" document is refused while it is
#: being composed, before anything expands it.
MAX_YAML_NODES = 50_000
#: How error messages quote values: short, whatever their size.
_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxother, _REPR.maxlist, _REPR.maxdict, _REPR.maxlevel = 60, 60, 5, 5, 3


class ConfigError(Exception):
    """The configuration is wrong: one line per problem (``lines``); the
    message is those lines joined by newlines."""

    def __init__(self, *lines: str) -> None:
        self.lines: tuple[str, ...] = lines
        super().__init__("\n".join(lines))


@attrs.frozen(repr=False)
class RuleSettings(Record):
    """What the configuration says of one rule."""

    enabled: bool
    severity: Severity
    options: Mapping[str, Any] = attrs.field(converter=lambda o: MappingProxyType(dict(o)))


@attrs.frozen(repr=False)
class FileIgnore(Record):
    """One ``per-file-ignores`` entry: a glob and the rules it silences."""

    pattern: str
    rules: tuple[str, ...]
    #: The directory of the configuration file that defines the pattern.
    base: str | None = None

    def matches(self, path: str | os.PathLike[str]) -> bool:
        """Whether the pattern matches ``path`` (see the module docstring)."""
        regex = _glob_regex(self.pattern)
        return any(regex.fullmatch(candidate) for candidate in _candidates(path, self.base, self.pattern))


@attrs.frozen(repr=False)
class Config(Record):
    """The effective configuration for a run."""

    rules: Mapping[str, RuleSettings]
    max_findings_per_rule: int = DEFAULT_MAX_FINDINGS
    source: str = "defaults"
    warnings_are_errors: bool = False
    per_file_ignores: tuple[FileIgnore, ...] = ()
    #: Where each value came from: ``max-findings-per-rule``,
    #: ``warnings-are-errors``, ``per-file-ignores``, ``per-file-ignores.PATTERN``
    #: and ``rules.NAME`` map to ``built-in default``, ``preset NAME`` or a file.
    sources: Mapping[str, str] = attrs.field(factory=dict, converter=lambda o: MappingProxyType(dict(o)))
    #: The files applied, base first (``preset default``, ..., the file itself).
    chain: tuple[str, ...] = ()
    #: How the configuration file was found: ``--config``, ``--preset``
    #: (a preset alone, nothing discovered), ``discovered`` or ``none``.
    found_by: str = "none"
    #: ``exclude`` globs: paths skipped when a directory (or a glob) is
    #: searched; each pattern is matched like a ``per-file-ignores`` one.
    exclude: tuple[FileIgnore, ...] = ()
    #: The base URL of the rule pages (``docs-url``): a rule's page is
    #: ``docs_url + NAME + ".md"``; None: see :func:`qcow2lint.links.docs_url`.
    docs_url: str | None = None

    def excluded(self, path: str | os.PathLike[str]) -> bool:
        """Whether an ``exclude`` pattern matches ``path`` (a file or a directory)."""
        return any(entry.matches(path) for entry in self.exclude)

    def enabled(self) -> list[str]:
        """Names of the enabled rules."""
        return [name for name, settings in self.rules.items() if settings.enabled]

    def ignored_rules(self, path: str | os.PathLike[str]) -> set[str]:
        """Names of the rules that ``per-file-ignores`` silences for ``path``."""
        names: set[str] = set()
        for entry in self.per_file_ignores:
            if entry.matches(path):
                names.update(entry.rules)
        return names


def apply_ignores(config: Config, report: ImageReport) -> ImageReport:
    """``report`` (a :class:`~qcow2lint.findings.ImageReport`) without the findings that
    ``per-file-ignores`` silences for its path."""
    if not config.per_file_ignores or not report.findings:
        return report
    silenced = config.ignored_rules(report.path)
    if not silenced:
        return report
    return report.keeping(f for f in report.findings if f.rule not in silenced)


_GLOB_CACHE: dict[str, re.Pattern[str]] = {}


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex for a glob: ``**`` crosses directories, ``*``/``?`` do not."""
    cached = _GLOB_CACHE.get(pattern)
    if cached is not None:
        return cached
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            close = pattern.find("]", i + 2 if pattern.startswith("[!", i) or pattern.startswith("[]", i) else i + 1)
            if close < 0:
                out.append(re.escape(c))
                i += 1
            else:
                body = pattern[i + 1 : close]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = close + 1
        else:
            out.append(re.escape(c))
            i += 1
    regex = re.compile("".join(out))
    _GLOB_CACHE[pattern] = regex
    return regex


def _posix(path: str) -> str:
    text = path.replace(os.sep, "/") if os.sep != "/" else path
    normal = os.path.normpath(text).replace(os.sep, "/") if text else text
    return normal


def _candidates(path: str | os.PathLike[str], base: str | None, pattern: str) -> list[str]:
    given = os.fspath(path)
    candidates = [_posix(given)]
    if base is not None:
        for absolute, root in (
            (os.path.abspath(given), os.path.abspath(base)),
            (os.path.realpath(given), os.path.realpath(base)),
        ):
            try:
                relative = os.path.relpath(absolute, root)
            except ValueError:  # another drive
                continue
            if not relative.startswith(os.pardir):
                candidates.append(_posix(relative))
    if "/" not in pattern:
        candidates.append(os.path.basename(_posix(given)))
    return candidates


def preset_path(name: str) -> Path | None:
    """The file of a built-in preset, if ``name`` is one."""
    path = PRESETS_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def _is_pyproject(path: Path) -> bool:
    return path.name == PYPROJECT or path.suffix == ".toml"


def discover(start: Path | None = None) -> Path | None:
    """The configuration file that applies from ``start`` upwards.

    In each directory, from ``start`` up to the root: ``.qcow2lint.yaml``
    or ``.qcow2lint.yml``, then ``qcow2lint.yaml`` or ``qcow2lint.yml``,
    then ``pyproject.toml`` if it has a ``[tool.qcow2lint]`` table.  Both
    spellings of one name in one directory are a ConfigError, and so is an
    unreadable or invalid ``pyproject.toml`` on the way (its table cannot be
    ruled out).
    """
    directory = (start or Path.cwd()).resolve()
    for folder in (directory, *directory.parents):
        for spellings in DISCOVERY_NAMES:
            found = [folder / name for name in spellings if (folder / name).is_file()]
            if len(found) > 1:
                raise ConfigError(
                    f"{found[0]} and {found[1]} both exist: two spellings of one configuration file; keep one"
                )
            if not found:
                continue
            if found[0].name == PYPROJECT and _pyproject_table(found[0]) is None:
                continue
            return found[0]
    return None


def resolve_rule(registry: Registry, name: str) -> Rule | None:
    """The rule a configuration, a selector or a per-file ignore names (by
    name or by code), None when it names none.  Every place that turns a
    name into a rule goes through here, so old names stay valid in one place.

    >>> from qcow2lint.registry import load_registry
    >>> resolve_rule(load_registry(), "Q0204").name
    'dirty-bit-set'
    """
    return registry.get(name)


def quote_value(value: Any) -> str:
    """A configuration value for an error message: its repr, shortened
    without expanding it whole (a YAML alias bomb has a huge repr), on one
    escaped line."""
    return one_line(_REPR.repr(value), 100)


def suggestion(key: str, choices: list[str]) -> str:
    """`` (did you mean 'NAME'?)`` for the choice closest to a mistyped
    ``key``, or nothing."""
    if len(key) > 100:  # difflib is quadratic; nobody mistypes 100 characters
        return ""
    import difflib

    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_regular(path: Path) -> None:
    """Refuse what cannot be a configuration file: a directory, a device, a
    FIFO (reading one would wait for a writer), a socket."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise ConfigError(f"{path}: is a directory, not a configuration file")
    if not stat.S_ISREG(mode):
        raise ConfigError(f"{path}: is not a regular file (a device, FIFO or socket), not a configuration file")


def _read_text(path: Path) -> str:
    _check_regular(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: the configuration is larger than {format_size(MAX_CONFIG_BYTES)}; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration is not UTF-8 text") from None


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    """The ``[tool.qcow2lint]`` table of a TOML file, None when it has none."""
    import tomllib

    try:
        data = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {str(exc).splitlines()[0]}") from None
    tool = data.get("tool")
    if not isinstance(tool, dict) or "qcow2lint" not in tool:
        return None
    table = tool["qcow2lint"]
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.qcow2lint] must be a table, not {type(table).__name__}")
    return table


def _read_config(path: Path, problems: list[str] | None = None) -> dict[str, Any]:
    """The configuration mapping of a YAML file or a pyproject's table.
    Keys repeated in a YAML mapping are added to ``problems`` (a TOML
    parser refuses them itself)."""
    if _is_pyproject(path):
        table = _pyproject_table(path)
        if table is None:
            raise ConfigError(f"{path}: no [tool.qcow2lint] table")
        return table
    return _read_yaml(path, problems)


def _read_yaml(path: Path, problems: list[str] | None = None) -> dict[str, Any]:
    import yaml  # only when there is a file to read: it costs start-up time

    text = _read_text(path)
    try:
        loader = _bounded_loader(yaml)(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        for line, key, first in sorted(loader.duplicates, key=lambda duplicate: duplicate[0]):
            message = f"{path}: line {line}: duplicate key {quote_value(key)} (first given at line {first})"
            if problems is None:
                raise ConfigError(message)
            problems.append(message)
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping, not {type(data).__name__}")
    return data


def _bounded_loader(yaml: Any) -> type:
    """A SafeLoader that counts the nodes of the document as it composes
    them, every alias weighing as much as the subtree it names, and stops
    past MAX_YAML_NODES (issue 9: a billion-laughs configuration hung)."""

    class BoundedLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.weights: dict[int, int] = {}
            #: ``(line, key, first line)`` of each key repeated in a mapping.
            self.duplicates: list[tuple[int, Any, int]] = []

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            # before flatten_mapping merges '<<' entries in: a merged key that
            # the mapping overrides is YAML's design, a key written twice is not
            seen: dict[Any, tuple[int, Any]] = {}  # key -> (first line, its latest value node)
            shadowed_nodes: list[tuple[Any, Any]] = []
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                try:
                    if key in seen:
                        first, earlier = seen[key]
                        self.duplicates.append((line, key, first))
                        shadowed_nodes.append((key, earlier))
                        seen[key] = (first, value_node)
                    else:
                        seen[key] = (line, value_node)
                except TypeError:  # an unhashable key: the constructor reports it
                    continue
            mapping = ShadowingMapping(super().construct_mapping(node, deep))
            mapping.shadowed = [(key, self.construct_object(value, deep)) for key, value in shadowed_nodes]
            return mapping

        def construct_yaml_map(self, node: Any) -> Any:
            # SafeConstructor's own, with a mapping that keeps what its
            # repeated keys shadow
            data = ShadowingMapping()
            yield data
            value = self.construct_mapping(node)
            data.update(value)
            data.shadowed = value.shadowed

        def compose_node(self, parent: Any, index: Any) -> Any:
            node = super().compose_node(parent, index)
            if id(node) in self.weights:  # an alias: the anchored node again
                weight = self.weights[id(node)]
            elif isinstance(node, yaml.SequenceNode):
                weight = 1 + sum(self.weights.get(id(child), 1) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                weight = 1 + sum(self.weights.get(id(k), 1) + self.weights.get(id(v), 1) for k, v in node.value)
            else:
                weight = 1
            self.weights[id(node)] = weight
            if weight > MAX_YAML_NODES:
                raise yaml.YAMLError(
                    f"the document expands to more than {MAX_YAML_NODES} nodes (aliases repeat whole subtrees); refused"
                )
            return node

    BoundedLoader.add_constructor("tag:yaml.org,2002:map", BoundedLoader.construct_yaml_map)
    return BoundedLoader


class ShadowingMapping(dict[Any, Any]):
    """A YAML mapping that also keeps the values its repeated keys shadow:
    a key given twice is an error, and the problems of both of its values
    are reported with it (a typo in the first must not stay hidden until
    the second is removed)."""

    shadowed: list[tuple[Any, Any]]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.shadowed = []


def _items(mapping: dict[Any, Any]) -> list[tuple[Any, Any]]:
    """Every key-value pair of a configuration mapping: the pairs a repeated
    key shadows first (the repetition is already an error: they are checked
    so that their problems are reported too), then the pairs that count."""
    return [*getattr(mapping, "shadowed", ()), *mapping.items()]


def _values(mapping: dict[Any, Any], key: str) -> list[Any]:
    """Every value given to ``key`` in ``mapping``, the one that counts last."""
    return [value for name, value in _items(mapping) if name == key]


def _label(path: Path) -> str:
    """How messages and provenance name a configuration file."""
    if path.resolve().parent == PRESETS_DIR.resolve():
        return f"preset {path.stem}"
    if _is_pyproject(path):
        return f"{path} [tool.qcow2lint]"
    return str(path)


def _where(path: Path) -> str:
    """The prefix of error messages: the file (and the pyproject table)."""
    return f"{path} [tool.qcow2lint]" if _is_pyproject(path) else str(path)


class _Loader:
    """Applies configuration layers (preset chains first) to rule settings,
    collecting every problem in ``problems`` rather than stopping at the first."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = {
            rule.name: RuleSettings(rule.default_enabled, rule.severity, rule.options) for rule in registry
        }
        self.max_findings = DEFAULT_MAX_FINDINGS
        self.warnings_are_errors = False
        self.ignores: dict[str, FileIgnore] = {}
        self.exclude: dict[str, FileIgnore] = {}
        self.docs_url: str | None = None
        self.sources: dict[str, str] = {
            "max-findings-per-rule": BUILTIN,
            "warnings-are-errors": BUILTIN,
            "per-file-ignores": BUILTIN,
            "exclude": BUILTIN,
            "docs-url": BUILTIN,
            **{f"rules.{rule.name}": BUILTIN for rule in registry},
        }
        self.chain: list[str] = []
        self.problems: list[str] = []

    def fail(self) -> None:
        """Raise the problems collected so far, if any, as one ConfigError."""
        if self.problems:
            raise ConfigError(*dict.fromkeys(self.problems))  # a preset read twice repeats nothing

    def apply_file(self, path: Path, seen: tuple[Path, ...] = ()) -> None:
        """Apply one file (its ``extends`` chain first), recording its problems."""
        where = _where(path)
        try:
            resolved = path.resolve()
            if resolved in seen:
                raise ConfigError(f"{where}: 'extends' loops back to this file")
            data = _read_config(path, self.problems)
        except ConfigError as exc:
            self.problems.extend(exc.lines)
            return
        label = _label(path)
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                self.problems.append(
                    f"{where}: unknown key {quote_value(key)}{suggestion(str(key), list(TOP_LEVEL_KEYS))}"
                )
        for base in _values(data, "extends"):
            if not isinstance(base, str):
                self.problems.append(
                    f"{where}: 'extends' must be a preset name or a file path, got {quote_value(base)}"
                )
            else:
                base_path = preset_path(base) or (path.parent / base)
                if base_path.is_file():
                    self.apply_file(base_path, (*seen, resolved))
                else:
                    self.problems.append(
                        f"{where}: 'extends: {one_line(base, 100)}' is neither a preset ({', '.join(presets())}) "
                        "nor a file"
                    )
        self.chain.append(label)
        for value in _values(data, "max-findings-per-rule"):
            if type(value) is not int or value < 0:
                self.problems.append(
                    f"{where}: 'max-findings-per-rule' must be a whole number >= 0, got {quote_value(value)}"
                )
            else:
                self.max_findings = value
                self.sources["max-findings-per-rule"] = label
        for value in _values(data, "warnings-are-errors"):
            if not isinstance(value, bool):
                self.problems.append(f"{where}: 'warnings-are-errors' must be true or false, got {quote_value(value)}")
            else:
                self.warnings_are_errors = value
                self.sources["warnings-are-errors"] = label
        for rules in _values(data, "rules"):
            self.apply_rules(where, label, rules)
        for value in _values(data, "per-file-ignores"):
            self.apply_ignores(path, where, label, value)
        for value in _values(data, "exclude"):
            self.apply_exclude(path, where, label, value)
        for value in _values(data, "docs-url"):
            if not isinstance(value, str) or not ABSOLUTE_URL.match(value):
                self.problems.append(
                    f"{where}: 'docs-url' must be an absolute URL (https://..., file:///...), got {quote_value(value)}"
                )
            else:
                self.docs_url = value
                self.sources["docs-url"] = label

    def apply_rules(self, where: str, label: str, rules: Any) -> None:
        """Apply one file's ``rules`` mapping."""
        if not rules:  # an empty ``rules:`` (null, {}) changes nothing
            return
        if not isinstance(rules, dict):
            self.problems.append(
                f"{where}: 'rules' must be a mapping of rule names to settings, got {quote_value(rules)}"
            )
            return
        named: dict[str, str] = {}  # rule name -> the key that named it in this file
        for key, value in _items(rules):
            rule = resolve_rule(self.registry, str(key))
            if rule is None:
                names = [r.name for r in self.registry]
                self.problems.append(f"{where}: unknown rule {quote_value(key)}{suggestion(str(key), names)}")
                continue
            # the same key written twice is a duplicate key, reported as such
            if named.get(rule.name, str(key)) != str(key):
                self.problems.append(
                    f"{where}: rule {rule.name!r} is given twice in 'rules' (as {quote_value(named[rule.name])} and "
                    f"{quote_value(key)}); give it once"
                )
                continue
            named[rule.name] = str(key)
            if self.apply_rule(where, rule, value):
                self.sources[f"rules.{rule.name}"] = label

    def apply_exclude(self, path: Path | None, where: str, label: str, value: Any) -> None:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problems.append(f"{where}: 'exclude' must be a list of glob patterns, got {quote_value(value)}")
            return
        base = None if path is None or label.startswith("preset ") else str(path.parent)
        for pattern in value:
            if not isinstance(pattern, str) or not pattern:
                self.problems.append(
                    f"{where}: exclude: a pattern must be a non-empty string, got {quote_value(pattern)}"
                )
                continue
            self.exclude[pattern] = FileIgnore(pattern, (), base)
        self.sources["exclude"] = label

    def apply_ignores(self, path: Path, where: str, label: str, value: Any) -> None:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.problems.append(
                f"{where}: 'per-file-ignores' must be a mapping of glob patterns to lists of rules, got {quote_value(value)}"
            )
            return
        names = [r.name for r in self.registry]
        base = None if label.startswith("preset ") else str(path.parent)
        for pattern, rules in _items(value):
            if not isinstance(pattern, str) or not pattern:
                self.problems.append(
                    f"{where}: per-file-ignores: a pattern must be a non-empty string, got {quote_value(pattern)}"
                )
                continue
            if isinstance(rules, str):
                rules = [rules]
            if not isinstance(rules, list):
                self.problems.append(
                    f"{where}: per-file-ignores {quote_value(pattern)}: expected a list of rule names or codes, got {quote_value(rules)}"
                )
                continue
            resolved: list[str] = []
            for item in rules:
                rule = resolve_rule(self.registry, item) if isinstance(item, str) else None
                if rule is None:
                    self.problems.append(
                        f"{where}: per-file-ignores {quote_value(pattern)}: unknown rule {quote_value(item)}{suggestion(str(item), names)}"
                    )
                elif rule.name not in resolved:
                    resolved.append(rule.name)
            self.ignores.pop(pattern, None)  # a repeated pattern moves to the end
            self.ignores[pattern] = FileIgnore(pattern, tuple(resolved), base)
            self.sources[f"per-file-ignores.{pattern}"] = label
        self.sources["per-file-ignores"] = label

    def apply_rule(self, where_file: str, rule: Rule, value: Any) -> bool:
        """Apply one rule's settings; False (and problems recorded) when they are wrong."""
        current = self.settings[rule.name]
        where = f"{where_file}: rule {rule.name!r}"
        if value in ("enable", "disable"):
            self.settings[rule.name] = attrs.evolve(current, enabled=value == "enable")
            return True
        if not isinstance(value, dict):
            self.problems.append(f"{where}: expected enable, disable or a mapping, got {quote_value(value)}")
            return False
        before = len(self.problems)
        enabled, severity, options = True, current.severity, dict(current.options)
        for option, setting in _items(value):
            if option == "level":
                try:
                    if not isinstance(setting, str):
                        raise ValueError
                    severity = Severity.parse(setting)
                except ValueError:
                    self.problems.append(f"{where}: unknown level {quote_value(setting)} (use error, warning or info)")
            elif option == "enabled":
                if not isinstance(setting, bool):
                    self.problems.append(f"{where}: 'enabled' must be true or false, got {quote_value(setting)}")
                else:
                    enabled = setting
            elif option in rule.options:
                problem = option_problem(rule, str(option), setting)
                if problem:
                    self.problems.append(f"{where}: {problem}")
                else:
                    options[option] = setting
            else:
                known = ["level", "enabled", *rule.options]
                self.problems.append(f"{where}: unknown option {quote_value(option)}{suggestion(str(option), known)}")
        if len(self.problems) > before:
            return False
        self.settings[rule.name] = RuleSettings(enabled, severity, options)
        return True

    def result(self, source: str, found_by: str) -> Config:
        self.fail()
        settings = self.settings
        sources = dict(self.sources)
        if self.warnings_are_errors:
            raised_by = sources["warnings-are-errors"]
            for name, s in settings.items():
                if s.severity == Severity.WARNING:
                    sources[f"rules.{name}"] += f"; level raised to error by warnings-are-errors ({raised_by})"
            settings = {
                name: attrs.evolve(s, severity=Severity.ERROR) if s.severity == Severity.WARNING else s
                for name, s in settings.items()
            }
        return Config(
            MappingProxyType(dict(settings)),
            self.max_findings,
            source,
            self.warnings_are_errors,
            tuple(self.ignores.values()),
            sources,
            tuple(self.chain),
            found_by,
            tuple(self.exclude.values()),
            self.docs_url,
        )


def option_problem(rule: Rule, option: str, value: Any) -> str | None:
    """Why ``value`` is not a valid value of ``rule``'s ``option``, or None:
    it must have the type of the default (an int does for a float) and meet
    the rule's OPTION_CONSTRAINTS."""
    default = rule.options[option]
    if not option_type_ok(value, default):
        return f"option {quote_value(option)} must be {type(default).__name__}, got {type(value).__name__} {quote_value(value)}"
    problem = constraint_problem(value, rule.option_constraints.get(option, {}))
    return f"option {quote_value(option)} {problem}, got {quote_value(value)}" if problem else None


def require_rules(config: Config) -> Config:
    """``config``, the effective configuration of a run; ConfigError when it
    enables no rule (it would check nothing and pass every image), saying
    what turned the rules off."""
    if any(settings.enabled for settings in config.rules.values()):
        return config
    why = Counter(config.sources.get(f"rules.{name}", BUILTIN).rsplit("; ", 1)[-1] for name in config.rules)
    causes = "; ".join(
        f"{cause if cause.startswith('disabled') else f'off in {cause}'}: {count} rule{'s' * (count != 1)}"
        for cause, count in why.most_common()
    )
    raise ConfigError(f"no rule is enabled, so nothing would be checked ({causes or 'no rule is known'})")


def load_config(
    registry: Registry,
    path: str | os.PathLike[str] | None = None,
    start: Path | None = None,
    preset: str | None = None,
) -> Config:
    """The effective configuration: ``path``, else a discovered file, else defaults.

    With ``preset`` (``--preset NAME``) the built-in preset is the base and
    nothing is discovered: only ``path``, when given, applies on top of it.
    """
    loader = _Loader(registry)
    if preset is not None:
        known = presets()
        if preset not in known:
            raise ConfigError(f"unknown preset {preset!r} (known presets: {', '.join(known)})")
        loader.apply_file(PRESETS_DIR / f"{preset}.yaml")
        if path is None:
            return loader.result(f"preset {preset}", "--preset")
    if path is not None:
        config_path: Path | None = Path(path)
        _check_regular(Path(path))
        found_by = "--config"
    else:
        config_path = discover(start)
        found_by = "discovered"
    if config_path is None:
        return loader.result("defaults", "none")  # the default preset is the loader's starting state
    loader.apply_file(config_path)
    return loader.result(str(config_path), found_by)
