"""YAML configuration: presets, ``extends:``, per-rule levels and options.

A configuration file looks like::

    extends: default            # or strict, or a path to another file
    max-findings-per-rule: 100  # per rule per image; 0 means no cap
    rules:
      header-padding-nonzero: disable
      l2-reserved-bits: {level: warning}
      Q0601: enable             # rules may be named by code too

Every problem is a ConfigError whose message names the file, the rule and
the problem in one line.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import attrs
import yaml

from qcow2lint.findings import Severity
from qcow2lint.registry import Registry

PRESETS_DIR = Path(__file__).parent / "presets"
DISCOVERY_NAMES = (".qcow2lint.yaml", "qcow2lint.yaml")
DEFAULT_MAX_FINDINGS = 100
TOP_LEVEL_KEYS = ("extends", "rules", "max-findings-per-rule", "warnings-are-errors")


class ConfigError(Exception):
    """The configuration is wrong; the message is one line."""


@attrs.frozen
class RuleSettings:
    """What the configuration says of one rule."""

    enabled: bool
    severity: Severity
    options: Mapping[str, Any] = attrs.field(converter=lambda o: MappingProxyType(dict(o)))


@attrs.frozen
class Config:
    """The effective configuration for a run."""

    rules: Mapping[str, RuleSettings]
    max_findings_per_rule: int = DEFAULT_MAX_FINDINGS
    source: str = "defaults"

    def enabled(self) -> list[str]:
        """Names of the enabled rules."""
        return [name for name, settings in self.rules.items() if settings.enabled]


def preset_path(name: str) -> Path | None:
    """The file of a built-in preset, if ``name`` is one."""
    path = PRESETS_DIR / f"{name}.yaml"
    return path if path.is_file() else None


def presets() -> list[str]:
    """Names of the built-in presets."""
    return sorted(path.stem for path in PRESETS_DIR.glob("*.yaml"))


def discover(start: Path | None = None) -> Path | None:
    """The first ``.qcow2lint.yaml`` / ``qcow2lint.yaml`` from ``start`` upwards."""
    directory = (start or Path.cwd()).resolve()
    for folder in (directory, *directory.parents):
        for name in DISCOVERY_NAMES:
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _suggest(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the configuration is not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
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


class _Loader:
    """Applies configuration layers (preset chains first) to rule settings."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.settings = {rule.name: RuleSettings(True, rule.severity, rule.options) for rule in registry}
        self.max_findings = DEFAULT_MAX_FINDINGS
        self.warnings_are_errors = False

    def apply_file(self, path: Path, seen: tuple[Path, ...] = ()) -> None:
        resolved = path.resolve()
        if resolved in seen:
            raise ConfigError(f"{path}: 'extends' loops back to this file")
        data = _read_yaml(path)
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                raise ConfigError(f"{path}: unknown key {key!r}{_suggest(str(key), list(TOP_LEVEL_KEYS))}")
        if "extends" in data:
            base = data["extends"]
            if not isinstance(base, str):
                raise ConfigError(f"{path}: 'extends' must be a preset name or a file path")
            base_path = preset_path(base) or (path.parent / base)
            if not base_path.is_file():
                raise ConfigError(
                    f"{path}: 'extends: {base}' is neither a preset ({', '.join(presets())}) nor a file"
                )
            self.apply_file(base_path, (*seen, resolved))
        if "max-findings-per-rule" in data:
            value = data["max-findings-per-rule"]
            if type(value) is not int or value < 0:
                raise ConfigError(f"{path}: 'max-findings-per-rule' must be a whole number >= 0, got {value!r}")
            self.max_findings = value
        if "warnings-are-errors" in data:
            value = data["warnings-are-errors"]
            if not isinstance(value, bool):
                raise ConfigError(f"{path}: 'warnings-are-errors' must be true or false, got {value!r}")
            self.warnings_are_errors = value
        rules = data.get("rules") or {}
        if not isinstance(rules, dict):
            raise ConfigError(f"{path}: 'rules' must be a mapping of rule names to settings")
        for key, value in rules.items():
            self.apply_rule(path, str(key), value)

    def apply_rule(self, path: Path, key: str, value: Any) -> None:
        rule = self.registry.get(key)
        if rule is None:
            names = [r.name for r in self.registry]
            raise ConfigError(f"{path}: unknown rule {key!r}{_suggest(key, names)}")
        current = self.settings[rule.name]
        where = f"{path}: rule {rule.name!r}"
        if value in ("enable", "disable"):
            self.settings[rule.name] = attrs.evolve(current, enabled=value == "enable")
            return
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected enable, disable or a mapping, got {value!r}")
        enabled, severity, options = True, current.severity, dict(current.options)
        for option, setting in value.items():
            if option == "level":
                try:
                    severity = Severity.parse(str(setting))
                except ValueError as exc:
                    raise ConfigError(f"{where}: {exc}") from None
            elif option == "enabled":
                if not isinstance(setting, bool):
                    raise ConfigError(f"{where}: 'enabled' must be true or false, got {setting!r}")
                enabled = setting
            elif option in rule.options:
                options[option] = _check_type(where, option, setting, rule.options[option])
            else:
                known = ["level", "enabled", *rule.options]
                raise ConfigError(f"{where}: unknown option {option!r}{_suggest(str(option), known)}")
        self.settings[rule.name] = RuleSettings(enabled, severity, options)

    def result(self, source: str) -> Config:
        settings = self.settings
        if self.warnings_are_errors:
            settings = {
                name: attrs.evolve(s, severity=Severity.ERROR) if s.severity == Severity.WARNING else s
                for name, s in settings.items()
            }
        return Config(MappingProxyType(dict(settings)), self.max_findings, source)


def _check_type(where: str, option: str, value: Any, default: Any) -> Any:
    """An option value must have the type of its default (ints count as floats)."""
    expected = type(default)
    ok = type(value) is expected or (expected is float and type(value) is int)
    if not ok:
        raise ConfigError(
            f"{where}: option {option!r} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )
    return value


def load_config(registry: Registry, path: str | os.PathLike[str] | None = None, start: Path | None = None) -> Config:
    """The effective configuration: ``path``, else a discovered file, else defaults."""
    loader = _Loader(registry)
    default = preset_path("default")
    if path is not None:
        config_path = Path(path)
        if not config_path.is_file():
            raise ConfigError(f"{config_path}: no such configuration file")
    else:
        config_path = discover(start)
    if config_path is None:
        if default is not None:
            loader.apply_file(default)
        return loader.result("defaults")
    loader.apply_file(config_path)
    return loader.result(str(config_path))


def reference_config(registry: Registry) -> str:
    """The reference configuration: every rule with its default level and
    options, itself a valid configuration equal to the defaults."""
    lines = [
        "# qcow2lint reference configuration: every rule, its default level and options.",
        "# Regenerate with: qcow2lint rules --reference-config > config.yaml",
        "extends: default",
        f"max-findings-per-rule: {DEFAULT_MAX_FINDINGS}",
        "warnings-are-errors: false",
        "rules:",
    ]
    for rule in registry:
        settings = {"level": str(rule.severity), **rule.options}
        flow = yaml.safe_dump(settings, default_flow_style=True, sort_keys=False).strip()
        lines += [f"  # {rule.code} {rule.summary}", f"  {rule.name}: {flow}"]
    return "\n".join(lines) + "\n"
