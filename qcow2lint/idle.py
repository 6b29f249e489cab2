"""Rules that cannot report anything with the options they are given.

A rule may declare, in its module, the option values with which it reports
nothing at all (``SILENT_WITH = {"check-exists": False}``).  Off by default
means one thing, ``DEFAULT_ENABLED = False``; an option that silences an
enabled rule is a choice made in a configuration, and naming the rule on
the command line (``--select``, ``--extend-select``) while that choice
holds is a usage error that says which option to set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from qcow2lint.text import yaml_value

if TYPE_CHECKING:
    from qcow2lint.config import RuleSettings
    from qcow2lint.registry import Registry, Rule
    from qcow2lint.selection import CommandLine

__all__ = ["refuse_idle_selection", "silencing_option"]


def silencing_option(rule: Rule, options: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The option, and its value, with which ``rule`` reports nothing
    (its module's ``SILENT_WITH``); None when it can report."""
    from qcow2lint.registry import LazyCheck

    check = rule.check.load() if isinstance(rule.check, LazyCheck) else rule.check
    silent = getattr(check, "__globals__", {}).get("SILENT_WITH", {})
    for option, value in silent.items() if isinstance(silent, Mapping) else ():
        if option in options and type(options[option]) is type(value) and options[option] == value:
            return option, value
    return None


def refuse_idle_selection(registry: Registry, line: CommandLine, rules: Mapping[str, RuleSettings]) -> None:
    """ConfigError when ``--select`` or ``--extend-select`` names a rule (by
    name or code, not by prefix or ALL) that its options keep silent."""
    from qcow2lint.config import ConfigError

    for option, items in (("--select", line.select or ()), ("--extend-select", line.extend_select)):
        for item in items:
            rule = registry.get(item)
            if rule is None or not rules[rule.name].enabled:
                continue
            silenced = silencing_option(rule, rules[rule.name].options)
            if silenced is not None:
                name, value = silenced
                raise ConfigError(
                    f"{option}: {rule.name} reports nothing with {name}: {yaml_value(value)} (from the configuration); "
                    f"set {name} to {yaml_value(not value) if isinstance(value, bool) else 'another value'} to run it"
                )
