"""Regenerates the repository's files that are generated from the rule
registry: ``docs/rules.md``, one page per rule in ``docs/rules/NAME.md``,
the rule table in ``README.md`` (between its ``rules:start`` and
``rules:end`` markers), ``config.yaml``, the configuration's JSON Schema
shipped in the package (``qcow2lint/schema/qcow2lint.schema.json``) and the
built-in rules' index (``rules/_index.json``, see :mod:`qcow2lint.rulefiles`).

    python -m qcow2lint.gen [--check] [ROOT]

ROOT is the repository (default: the working directory).  With ``--check``
nothing is written: the stale files are named and the exit status is 1.
A page in ``docs/rules/`` of a rule that no longer exists is stale too (and
removed).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from qcow2lint.registry import Registry, RegistryError, load_registry

COMMAND = "python -m qcow2lint.gen"
#: The generated files, relative to the repository root.
GENERATED = ("docs/rules.md", "README.md", "config.yaml", "qcow2lint/schema/qcow2lint.schema.json", "rules/_index.json")
#: The directory of the per-rule pages, relative to the repository root.
PAGES = "docs/rules"
_README_TABLE = re.compile(r"(<!-- rules:start[^>]*-->\n)(.*?)(<!-- rules:end -->)", re.S)


def expected(root: Path, registry: Registry) -> dict[str, str]:
    """What each generated file should hold, by its path relative to ``root``."""
    from qcow2lint.config import reference_config
    from qcow2lint.configschema import render_schema
    from qcow2lint.report.rulesdoc import rule_pages, rules_markdown, rules_table
    from qcow2lint.rulefiles import index_text

    readme = (root / "README.md").read_text(encoding="utf-8")
    if not _README_TABLE.search(readme):
        raise ValueError("README.md has no <!-- rules:start --> ... <!-- rules:end --> section")
    table = rules_table(registry)
    return {
        "docs/rules.md": rules_markdown(registry),
        "README.md": _README_TABLE.sub(lambda m: m.group(1) + table + m.group(3), readme, count=1),
        "config.yaml": reference_config(registry),
        "qcow2lint/schema/qcow2lint.schema.json": render_schema(registry),
        "rules/_index.json": index_text(str(root / "rules")),
        **{f"{PAGES}/{name}": text for name, text in rule_pages(registry).items()},
    }


def _orphans(root: Path, files: dict[str, str]) -> list[str]:
    """Pages in docs/rules/ that no rule generates."""
    folder = root / PAGES
    if not folder.is_dir():
        return []
    return sorted(f"{PAGES}/{p.name}" for p in folder.glob("*.md") if f"{PAGES}/{p.name}" not in files)


def stale(root: Path, registry: Registry) -> list[str]:
    """The generated files whose content is not what the registry gives
    (and the pages of rules that no longer exist)."""
    files = expected(root, registry)
    return [name for name in files if _read(root / name) != files[name]] + _orphans(root, files)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with ``--check`` name) the stale generated files."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    rest = [a for a in args if a != "--check"]
    if len(rest) > 1 or any(a.startswith("-") for a in rest):
        print(f"usage: {COMMAND} [--check] [ROOT]", file=sys.stderr)
        return 2
    root = Path(rest[0] if rest else ".")
    if not (root / "rules").is_dir() or not (root / "README.md").is_file():
        print(f"{COMMAND}: {root} is not the qcow2lint repository (no rules/ or README.md)", file=sys.stderr)
        return 2
    try:
        registry = load_registry()
        files = expected(root, registry)
    except (RegistryError, ValueError, OSError) as exc:
        print(f"{COMMAND}: error: {exc}", file=sys.stderr)
        return 2
    outdated = [name for name in files if _read(root / name) != files[name]]
    orphans = _orphans(root, files)
    for name in outdated:
        if check:
            print(f"{name} is stale: run `{COMMAND}` in the repository")
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(files[name], encoding="utf-8")
            print(f"rewrote {name}")
    for name in orphans:
        if check:
            print(f"{name} is stale (no such rule): run `{COMMAND}` in the repository")
        else:
            (root / name).unlink()
            print(f"removed {name}")
    return 1 if check and (outdated or orphans) else 0


if __name__ == "__main__":
    sys.exit(main())
