"""Configuration as YAML text: the effective configuration with the source
of every value (``qcow2lint config``), and the reference configuration of
every rule (``config.yaml``, ``qcow2lint rules --reference-config``)."""

from __future__ import annotations

from typing import Any

from qcow2lint.config import BUILTIN, DEFAULT_MAX_FINDINGS, Config
from qcow2lint.registry import Registry

#: How the reference configuration tells editors' users where the schema
#: comes from.  No ``$schema`` line of its own: a path would resolve only
#: beside the file it was written for, and the schema has no published URL.
#: The modeline is indented inside the comment so that no editor takes it
#: for the file's own.
SCHEMA_HINT = (
    "# Editors with the YAML language server check and complete this file from its JSON Schema:",
    "# save it (qcow2lint config --schema > qcow2lint.schema.json) and start the file with",
    "#   # yaml-language-server: $schema=qcow2lint.schema.json",
)


def render_config(config: Config, registry: Registry) -> str:
    """The effective configuration as YAML (itself a valid configuration),
    each value followed by a comment saying where it came from."""
    if config.found_by == "none":
        header = "# no configuration file found; built-in defaults"
    else:
        how = {
            "--config": "given with --config",
            "--preset": "given with --preset",
        }.get(config.found_by, "found from the working directory upwards")
        header = f"# configuration: {config.source} ({how})"
    lines = ["# qcow2lint effective configuration", header]
    if config.chain:
        lines.append("# applied in order: " + " -> ".join(config.chain))

    def dump(value: Any) -> str:
        import yaml

        text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10**6)
        return text.removesuffix("\n...\n").strip()  # a bare scalar ends with a document marker

    def source(key: str) -> str:
        return config.sources.get(key, BUILTIN)

    lines.append(f"max-findings-per-rule: {config.max_findings_per_rule}  # {source('max-findings-per-rule')}")
    lines.append(f"warnings-are-errors: {dump(config.warnings_are_errors)}  # {source('warnings-are-errors')}")
    if config.per_file_ignores:
        lines.append(f"per-file-ignores:  # {source('per-file-ignores')}")
        for entry in config.per_file_ignores:
            where = source(f"per-file-ignores.{entry.pattern}")
            base = f", relative to {entry.base}" if entry.base else ""
            lines.append(f"  {dump(entry.pattern)}: {dump(list(entry.rules))}  # {where}{base}")
    else:
        lines.append(f"per-file-ignores: {{}}  # {source('per-file-ignores')}")
    if config.exclude:
        lines.append(f"exclude:  # {source('exclude')}")
        for entry in config.exclude:
            base = f"  # relative to {entry.base}" if entry.base else ""
            lines.append(f"  - {dump(entry.pattern)}{base}")
    else:
        lines.append(f"exclude: []  # {source('exclude')}")
    if config.docs_url is None:
        lines.append(f"# docs-url: not set  # {source('docs-url')}: see docs/configuration.md")
    else:
        lines.append(f"docs-url: {dump(config.docs_url)}  # {source('docs-url')}")
    lines.append("rules:")
    for rule in registry:
        settings = config.rules.get(rule.name)
        if settings is None:
            continue
        value = {"enabled": settings.enabled, "level": str(settings.severity), **settings.options}
        lines.append(f"  {rule.name}: {dump(value)}  # {rule.code}; {source('rules.' + rule.name)}")
    return "\n".join(lines) + "\n"


def reference_config(registry: Registry) -> str:
    """The reference configuration: every rule with its default level and
    options, itself a valid configuration equal to the defaults."""
    lines = [
        "# qcow2lint reference configuration: every rule, its default level and options.",
        "# Printed by: qcow2lint rules --reference-config (in the repository: python -m qcow2lint.gen)",
        *SCHEMA_HINT,
        "extends: default",
        f"max-findings-per-rule: {DEFAULT_MAX_FINDINGS}",
        "warnings-are-errors: false",
        "exclude: []  # globs skipped when a directory is searched",
        "# docs-url: https://.../docs/rules/  # base URL of the rule pages, for SARIF's helpUri",
        "rules:",
    ]
    for rule in registry:
        settings = {"level": str(rule.severity), **({} if rule.default_enabled else {"enabled": False}), **rule.options}
        import yaml

        flow = yaml.safe_dump(settings, default_flow_style=True, sort_keys=False).strip()
        lines += [f"  # {rule.code} {rule.summary}", f"  {rule.name}: {flow}"]
    return "\n".join(lines) + "\n"
