"""The repository's contract: a built-in rule is one file in rules/, found
through the one rule-package entry point, and the rules install under their
own import name."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import tomllib

from harness import REPO_ROOT

from qcow2lint.registry import load_registry, read_rule_file


def test_every_rule_module_is_a_rule_with_no_entry_point_of_its_own() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    groups = project["project"]["entry-points"]
    assert groups == {"qcow2lint.rule_packages": {"builtin": "qcow2lint_rules"}}
    modules = {p.stem for p in (REPO_ROOT / "rules").glob("*.py") if not p.name.startswith("_")}
    registry = load_registry()
    assert {rule.origin.split()[0].removeprefix("qcow2lint_rules.") for rule in registry} == modules
    for rule in registry:
        text = (REPO_ROOT / "rules" / f"{rule.name.replace('-', '_')}.py").read_text()
        assert re.search(rf'^NAME = "{re.escape(rule.name)}"$', text, re.M), rule.name


def test_what_is_read_without_importing_equals_what_importing_gives() -> None:
    """The registry reads each built-in rule's identity with ast; the module,
    imported, must say the same."""
    paths = sorted(p for p in (REPO_ROOT / "rules").glob("*.py") if not p.name.startswith("_"))
    assert len(paths) >= 150
    for path in paths:
        read = read_rule_file(str(path))
        module = importlib.import_module(f"qcow2lint_rules.{path.stem}")
        assert read["doc"] == module.__doc__, path.name
        assert (read["NAME"], read["CODE"], read["SEVERITY"], read["SCOPE"]) == (
            module.NAME,
            module.CODE,
            module.SEVERITY,
            module.SCOPE.__name__,
        ), path.name
        assert read.get("OPTIONS", {}) == getattr(module, "OPTIONS", {}), path.name
        assert read.get("OPTION_CONSTRAINTS", {}) == getattr(module, "OPTION_CONSTRAINTS", {}), path.name
        assert read.get("DEFAULT_ENABLED", True) is getattr(module, "DEFAULT_ENABLED", True), path.name
        assert read["check"] and callable(module.check), path.name


def test_rules_install_as_qcow2lint_rules_not_rules() -> None:
    assert importlib.util.find_spec("qcow2lint_rules") is not None
    assert {rule.origin.split(".")[0] for rule in load_registry()} == {"qcow2lint_rules"}


def test_rule_codes_are_unique_and_follow_the_catalogue_sections() -> None:
    codes = [rule.code for rule in load_registry()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"Q(0[1-9]|1[0-5])\d\d", code) for code in codes)


def test_no_test_module_imports_another() -> None:
    """Shared tables and builders live in helper modules (harness, rows_*,
    *_builders), so that a broken test module fails alone."""
    tests = REPO_ROOT / "tests"
    names = {path.stem for path in tests.glob("test_*.py")}
    offenders = []
    for path in sorted(tests.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported = [node.module]
            else:
                continue
            offenders += [f"{path.name} imports {name}" for name in imported if name.split(".")[-1] in names]
    assert offenders == []
