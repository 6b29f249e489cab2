"""Finds rules: the built-in rule package and third-party plugins.

Two doors:

- A rule *package* (entry-point group ``qcow2lint.rule_packages``; the
  built-in rules in ``rules/``, installed as ``qcow2lint_rules``, are one):
  every ``*.py`` in the package whose name does not start with ``_`` is a
  rule, named after its file, read without importing it
  (:mod:`qcow2lint.rulefiles`).
- A rule *plugin* (entry-point group ``qcow2lint.rules``): one entry point
  per rule, whose name is the rule's NAME; it is imported and validated.

What a rule must declare, and the checks of it, are
:mod:`qcow2lint.rulecontract`'s.  Discovery, reading and validation are
separate steps so that each failure names its plugin or file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from qcow2lint import cache
from qcow2lint.aliases import current_name
from qcow2lint.recordtype import Record
from qcow2lint.rulecontract import (
    SCOPES,
    RegistryError,
    Rule,
    constraint_problem,
    option_schema,
    option_type_ok,
    validate,
)
from qcow2lint.rulefiles import LazyCheck, from_source, read_rule_file
from qcow2lint.rulefiles import load_package as _load_package

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "GROUP",
    "INTERNAL_ERROR",
    "INTERNAL_ERROR_CODE",
    "PACKAGE_GROUP",
    "SCOPES",
    "FoundEntry",
    "LazyCheck",
    "Registry",
    "RegistryError",
    "Rule",
    "constraint_problem",
    "found_entries",
    "from_source",
    "load",
    "load_package",
    "load_registry",
    "option_schema",
    "option_type_ok",
    "read_rule_file",
    "validate",
]

GROUP = "qcow2lint.rules"
PACKAGE_GROUP = "qcow2lint.rule_packages"
#: The engine's own pseudo-rule for a rule that crashed.
INTERNAL_ERROR = "internal-error"
INTERNAL_ERROR_CODE = "Q0000"


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


def _dist_name(entry: EntryPoint | FoundEntry) -> str:
    if isinstance(entry, FoundEntry):
        return entry.dist
    return entry.dist.name if entry.dist is not None else ""


def load(entry: EntryPoint | FoundEntry) -> Rule:
    """Load one rule plugin's entry point and validate it as a rule."""
    dist = _dist_name(entry)
    origin = entry.value + (f" ({dist})" if dist else "")
    try:
        target = entry.load()
    except Exception as exc:  # a broken plugin must name itself, not crash us
        raise RegistryError(f"rule plugin {entry.name!r} from {origin} failed to load: {exc!r}") from None
    return validate(target, entry.name, origin)


def load_package(entry: EntryPoint | FoundEntry) -> list[Rule]:
    """Every rule of the rule package an entry point names, without importing it."""
    return _load_package(entry.value, _dist_name(entry), entry.name)


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
    so what it found is cached (:mod:`qcow2lint.cache`) under
    :func:`_distributions_state`.
    """
    state = _distributions_state()
    key = None if state is None else [list(groups), state]
    rows = None if key is None else cache.load("entry-points", key)
    if not (isinstance(rows, list) and all(isinstance(row, tuple) and len(row) == 4 for row in rows)):
        from importlib.metadata import entry_points

        everything = entry_points()
        rows = [
            (entry.name, entry.value, group, _dist_name(entry))
            for group in groups
            for entry in sorted(everything.select(group=group), key=lambda ep: ep.name)
        ]
        if key is not None:
            cache.store("entry-points", key, rows)
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
