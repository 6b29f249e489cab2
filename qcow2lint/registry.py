"""Finds rules through the ``qcow2lint.rules`` entry-point group.

Built-in rules and third-party plugins come through the same door: each
entry point names a module (or any object) that carries a rule's identity
constants and a ``check(record, ctx)`` generator.  Discovery, loading and
validation are separate steps so that each failure names its plugin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any

import attrs

from qcow2lint import records
from qcow2lint.findings import Severity

GROUP = "qcow2lint.rules"
#: The record types a rule may inspect: the engine hands it every record of
#: its SCOPE in the image.
SCOPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        records.Image, records.Header, records.ExtensionArea, records.HeaderExtension, records.BitmapsExtension,
        records.EncryptionArea,
        records.BitmapDirectoryEntry, records.BitmapTable, records.L1Table, records.L2Tables,
        records.RefcountTable, records.RefcountBlock, records.SnapshotTable, records.SnapshotEntry,
        records.ReadProblem, records.CompressedCluster, records.RefcountCheck,
    )  # fmt: skip
}
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
CODE_PATTERN = re.compile(r"^[A-Z]+[0-9]{3,5}$")
#: The engine's own pseudo-rule for a rule that crashed.
INTERNAL_ERROR = "internal-error"
INTERNAL_ERROR_CODE = "Q0000"


class RegistryError(Exception):
    """A rule plugin cannot be loaded or does not follow the rule contract."""


@attrs.frozen
class Rule:
    """A loaded, validated rule."""

    name: str
    code: str
    severity: Severity
    scope: type
    check: Callable[..., Iterable[Any]] = attrs.field(eq=False)
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=lambda o: MappingProxyType(dict(o)))
    doc: str = ""
    origin: str = ""

    @property
    def summary(self) -> str:
        """The first line of the rule's documentation."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


def discover(group: str = GROUP) -> list[EntryPoint]:
    """Every entry point in ``group``, sorted by name."""
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


_DIST_NAMES: dict[int, str] = {}


def _dist_name(entry: EntryPoint) -> str:
    """The distribution's name; reading it parses METADATA, so once per dist."""
    if entry.dist is None:
        return ""
    key = id(entry.dist)
    if key not in _DIST_NAMES:
        _DIST_NAMES[key] = entry.dist.name
    return _DIST_NAMES[key]


def load(entry: EntryPoint) -> Rule:
    """Load one entry point and validate it as a rule."""
    dist = _dist_name(entry)
    origin = entry.value + (f" ({dist})" if dist else "")
    try:
        target = entry.load()
    except Exception as exc:  # a broken plugin must name itself, not crash us
        raise RegistryError(f"rule plugin {entry.name!r} from {origin} failed to load: {exc!r}") from None
    return validate(target, entry.name, origin)


def validate(target: Any, entry_name: str, origin: str = "") -> Rule:
    """Check that ``target`` follows the rule contract and wrap it."""

    def fail(problem: str) -> RegistryError:
        return RegistryError(f"rule plugin {entry_name!r} from {origin}: {problem}")

    name = getattr(target, "NAME", None)
    if name != entry_name or not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise fail(f"NAME must be the entry point's name in kebab-case, got {name!r}")
    code = getattr(target, "CODE", None)
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise fail(f"CODE must look like 'Q0101', got {code!r}")
    try:
        severity = Severity.parse(getattr(target, "SEVERITY", ""))
    except (ValueError, AttributeError) as exc:
        raise fail(f"SEVERITY: {exc}") from None
    scope = getattr(target, "SCOPE", None)
    if scope not in SCOPES.values():
        raise fail(f"SCOPE must be one of {', '.join(SCOPES)}, got {scope!r}")
    check = getattr(target, "check", None)
    if not callable(check):
        raise fail("it has no check(record, ctx) function")
    options = getattr(target, "OPTIONS", {})
    if not isinstance(options, Mapping) or not all(isinstance(k, str) and k != "level" for k in options):
        raise fail("OPTIONS must map option names (not 'level') to defaults")
    return Rule(name, code, severity, scope, check, options, getattr(target, "__doc__", "") or "", origin)


@attrs.frozen
class Registry:
    """Every rule, by name and by code."""

    rules: tuple[Rule, ...]

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, key: str) -> Rule | None:
        """A rule by name or by code."""
        for rule in self.rules:
            if key in (rule.name, rule.code):
                return rule
        return None


def load_registry(group: str = GROUP) -> Registry:
    """Load and validate every rule; names and codes must be unique."""
    rules = [load(entry) for entry in discover(group)]
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
