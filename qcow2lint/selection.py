"""The command line's rule selection on top of a configuration:
``--select``, ``--extend-select``, ``--ignore`` (rule names, codes, code
prefixes or ``ALL``), ``--exclude`` and ``--docs-url``; the provenance of
every value they change names the option."""

from __future__ import annotations

import os
import re
from types import MappingProxyType

import attrs

from qcow2lint.config import (
    ABSOLUTE_URL,
    BUILTIN,
    Config,
    ConfigError,
    FileIgnore,
    quote_value,
    require_rules,
    resolve_rule,
    suggestion,
)
from qcow2lint.idle import refuse_idle_selection
from qcow2lint.recordtype import Record
from qcow2lint.registry import Registry


@attrs.frozen(repr=False)
class CommandLine(Record):
    """What the command line adds on top of the configuration (picklable, so
    that worker processes apply it too).

    ``select`` (None: keep the configuration's choice) is the whole set of
    enabled rules; ``extend_select`` enables more; ``ignore`` disables, last.
    Each item is a rule name, a code, a code prefix (``Q07``: every L2 rule)
    or ``ALL``.  ``exclude`` adds globs to the configuration's; ``docs_url``
    replaces its ``docs-url``.
    """

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    docs_url: str | None = None

    def __bool__(self) -> bool:
        return bool(self.select is not None or self.extend_select or self.ignore or self.exclude or self.docs_url)


_PREFIX = re.compile(r"^[A-Za-z]+[0-9]*$")


def select_rules(registry: Registry, item: str, option: str = "--select") -> list[str]:
    """The names of the rules ``item`` names: a rule name, a code, a code
    prefix (``Q07``) or ``ALL``; ConfigError when it names none.

    >>> from qcow2lint.registry import load_registry
    >>> select_rules(load_registry(), "Q070")[:2]
    ['l2-reserved-bits', 'misaligned-data-cluster']
    >>> select_rules(load_registry(), "dirty-bit-set"), select_rules(load_registry(), "Q0204")
    (['dirty-bit-set'], ['dirty-bit-set'])
    """
    if not item:
        raise ConfigError(f"{option}: empty rule name (an unset variable, or a stray comma?)")
    rule = resolve_rule(registry, item)
    if rule is not None:
        return [rule.name]
    if item.upper() == "ALL":
        return [r.name for r in registry]
    if _PREFIX.match(item):
        prefix = item.upper()
        names = [r.name for r in registry if r.code.startswith(prefix)]
        if names:
            return names
    known = [r.name for r in registry]
    raise ConfigError(
        f"{option}: {quote_value(item)} is no rule name, code or code prefix (like Q07){suggestion(item, known)}"
    )


def apply_command_line(config: Config, registry: Registry, line: CommandLine) -> Config:
    """``config`` with the command line's selection, exclusions and docs URL
    on top; the provenance of every changed value names the option.
    ConfigError when no rule is left enabled (:func:`require_rules`)."""
    if not line:
        return require_rules(config)
    rules = dict(config.rules)
    sources = dict(config.sources)

    def expand(option: str, items: tuple[str, ...]) -> list[str]:
        names: list[str] = []
        for item in items:
            names += [n for n in select_rules(registry, item, option) if n not in names]
        return names

    def note(name: str, text: str) -> None:
        key = f"rules.{name}"
        sources[key] = f"{sources.get(key, BUILTIN)}; {text}"

    if line.select is not None:
        chosen = set(expand("--select", line.select))
        for name, settings in rules.items():
            if (name in chosen) != settings.enabled:
                note(name, "enabled by --select" if name in chosen else "disabled: not in --select")
            rules[name] = attrs.evolve(settings, enabled=name in chosen)
    for name in expand("--extend-select", line.extend_select):
        if not rules[name].enabled:
            note(name, "enabled by --extend-select")
        rules[name] = attrs.evolve(rules[name], enabled=True)
    for name in expand("--ignore", line.ignore):
        if rules[name].enabled:
            note(name, "disabled by --ignore")
        rules[name] = attrs.evolve(rules[name], enabled=False)
    refuse_idle_selection(registry, line, rules)
    exclude = config.exclude
    if line.exclude:
        exclude += tuple(FileIgnore(pattern, (), os.getcwd()) for pattern in line.exclude if pattern)
        sources["exclude"] = f"{sources.get('exclude', BUILTIN)}; --exclude"
    docs_url = config.docs_url
    if line.docs_url is not None:
        if not ABSOLUTE_URL.match(line.docs_url):
            raise ConfigError(
                f"--docs-url: must be an absolute URL (https://..., file:///...), got {quote_value(line.docs_url)}"
            )
        docs_url = line.docs_url
        sources["docs-url"] = "--docs-url"
    return require_rules(
        attrs.evolve(
            config,
            rules=MappingProxyType(rules),
            sources=sources,
            exclude=exclude,
            docs_url=docs_url,
            chain=(*config.chain, "command line"),
        )
    )
