"""The repository's contract: built-in rules are registered through the
entry-point group and install under their own import name."""

from __future__ import annotations

import importlib.util
import re
import tomllib

from harness import REPO_ROOT
from qcow2lint.registry import load_registry


def test_every_rule_module_is_registered_and_every_entry_point_has_a_module() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    entry_points = project["project"]["entry-points"]["qcow2lint.rules"]
    modules = {p.stem for p in (REPO_ROOT / "rules").glob("*.py") if p.name != "__init__.py"}
    assert {v.removeprefix("qcow2lint_rules.") for v in entry_points.values()} == modules
    for name, target in entry_points.items():
        text = (REPO_ROOT / "rules" / f"{target.removeprefix('qcow2lint_rules.')}.py").read_text()
        assert re.search(rf'^NAME = "{re.escape(name)}"$', text, re.M), name


def test_rules_install_as_qcow2lint_rules_not_rules() -> None:
    assert importlib.util.find_spec("qcow2lint_rules") is not None
    assert {rule.origin.split(".")[0] for rule in load_registry()} == {"qcow2lint_rules"}


def test_rule_codes_are_unique_and_follow_the_catalogue_sections() -> None:
    codes = [rule.code for rule in load_registry()]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"Q(0[1-9]|1[0-5])\d\d", code) for code in codes)
