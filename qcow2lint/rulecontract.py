"""The rule contract: what a rule declares, and the checks of it that both
doors of the registry share (a rule file read from its source, a plugin
imported).

A rule carries its identity constants (``NAME``, ``CODE``, ``SEVERITY``,
``SCOPE``, optional ``OPTIONS``, ``OPTION_CONSTRAINTS``, ``DEFAULT_ENABLED``,
``REPRO``, ``QEMU_REFUSES`` and ``STRICTER_THAN_QEMU``), its documentation (the module docstring) and
a ``check(record, ctx)`` generator.

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

import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from qcow2lint.findings import Severity
from qcow2lint.recordtype import Record

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
#: The constants a rule declares as literals (a rule file's are read from
#: its source; ``SCOPE`` is a class and read apart).
LITERALS = (
    "NAME",
    "CODE",
    "SEVERITY",
    "OPTIONS",
    "OPTION_CONSTRAINTS",
    "DEFAULT_ENABLED",
    "REPRO",
    "QEMU_REFUSES",
    "STRICTER_THAN_QEMU",
)
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
CODE_PATTERN = re.compile(r"^[A-Z]+[0-9]{3,5}$")
#: The option types, by the type of the default, as JSON Schema names them.
OPTION_TYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
CONSTRAINT_KEYS = ("choices", "minimum", "maximum")


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
    #: Why the rule is right to flag, as an error, an image that ``qemu-img
    #: check`` passes (the literal ``STRICTER_THAN_QEMU``; rendered in
    #: docs/rules.md and on the rule's page).
    stricter_than_qemu: str = ""

    @property
    def summary(self) -> str:
        """The first line of the rule's documentation."""
        return self.doc.strip().splitlines()[0] if self.doc.strip() else ""


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


def _check_options(fail: Callable[[str], RegistryError], options: Any, constraints: Any) -> None:
    """OPTIONS maps names to typed defaults; OPTION_CONSTRAINTS must fit it:
    known options, known keys, choices of the option's type, numeric bounds
    on numbers, the default allowed."""
    if not isinstance(options, Mapping) or not all(
        isinstance(k, str) and k not in ("level", "enabled") for k in options
    ):
        raise fail("OPTIONS must map option names (not 'level' or 'enabled') to defaults")
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


def make_rule(
    meta: Mapping[str, Any],
    *,
    expected: str,
    named_after: str,
    scope: str | None,
    declared_scope: Any,
    check: Callable[..., Iterable[Any]] | None,
    doc: str,
    origin: str,
    fail: Callable[[str], RegistryError],
) -> Rule:
    """Check a rule's declarations and wrap them as a :class:`Rule`.

    ``meta`` holds the declared :data:`LITERALS`; ``expected`` is the name
    the rule must have (``named_after`` says whose: "the file's name", "the
    entry point's name"); ``scope`` is the name of its SCOPE class, None
    when ``declared_scope`` (what it declared) is none of :data:`SCOPES`;
    ``check`` its check function, None when it has none.
    """
    name = meta.get("NAME")
    if name != expected or not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise fail(f"NAME must be {named_after} in kebab-case ({expected!r}), got {name!r}")
    code = meta.get("CODE")
    if not isinstance(code, str) or not CODE_PATTERN.match(code):
        raise fail(f"CODE must look like 'Q0101', got {code!r}")
    try:
        severity = Severity.parse(meta.get("SEVERITY", ""))
    except (ValueError, AttributeError) as exc:
        raise fail(f"SEVERITY: {exc}") from None
    options = meta.get("OPTIONS", {})
    constraints = meta.get("OPTION_CONSTRAINTS", {})
    _check_options(fail, options, constraints)
    default_enabled = meta.get("DEFAULT_ENABLED", True)
    if not isinstance(default_enabled, bool):
        raise fail(f"DEFAULT_ENABLED must be True or False, got {default_enabled!r}")
    if scope is None or scope not in SCOPES:
        raise fail(f"SCOPE must be one of {', '.join(SCOPES)}, got {declared_scope!r}")
    if check is None:
        raise fail("it has no check(record, ctx) function")
    refuses = meta.get("QEMU_REFUSES", ())
    if not isinstance(refuses, tuple) or not all(isinstance(m, str) and m for m in refuses):
        raise fail(f"QEMU_REFUSES must be a tuple of QEMU's messages (strings), got {refuses!r}")
    repro = meta.get("REPRO", "")
    if not isinstance(repro, str):
        raise fail("REPRO must be a string of shell commands")
    stricter = meta.get("STRICTER_THAN_QEMU", "")
    if not isinstance(stricter, str):
        raise fail("STRICTER_THAN_QEMU must be a string: why an image qemu-img check passes is flagged")
    return Rule(
        name,
        code,
        severity,
        scope,
        check,
        options,
        doc,
        origin,
        option_constraints=constraints,
        default_enabled=default_enabled,
        repro=repro,
        qemu_refuses=refuses,
        stricter_than_qemu=" ".join(stricter.split()),
    )


def validate(target: Any, entry_name: str, origin: str = "") -> Rule:
    """Check that ``target`` (an imported plugin) follows the rule contract and wrap it."""

    def fail(problem: str) -> RegistryError:
        return RegistryError(f"rule plugin {entry_name!r} from {origin}: {problem}")

    scope = getattr(target, "SCOPE", None)
    check = getattr(target, "check", None)
    return make_rule(
        {key: getattr(target, key) for key in LITERALS if hasattr(target, key)},
        expected=entry_name,
        named_after="the entry point's name",
        scope=scope.__name__ if isinstance(scope, type) and scope.__module__.startswith("qcow2lint.") else None,
        declared_scope=scope,
        check=check if callable(check) else None,
        doc=getattr(target, "__doc__", "") or "",
        origin=origin,
        fail=fail,
    )
