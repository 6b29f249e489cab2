"""Retired rule names keep working: a renamed rule's old name, and a rule
retired into the one that reported the same defect, select that rule in
configuration files, ``--select``/``--ignore`` and baselines (one table,
qcow2lint.aliases)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from harness import REPO_ROOT, run_cli

from qcow2lint.aliases import MERGED, RENAMED, RETIRED
from qcow2lint.baseline import BaselineFilter, parse_baseline
from qcow2lint.config import load_config
from qcow2lint.configschema import config_schema
from qcow2lint.findings import Finding, ImageReport, Severity
from qcow2lint.registry import load_registry
from qcow2lint.selection import CommandLine, apply_command_line, select_rules

OLD, NEW = "metadata-refcount-gt-one", "metadata-refcount-not-one"
GONE, KEPT = "overlap-zero-length-bitmap-dir", "autoclear-bitmaps-without-ext"


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_every_retired_name_resolves_to_a_registered_rule_and_is_no_rule_itself(registry) -> None:
    names = {key for rule in registry for key in (rule.name, rule.code)}
    for old, new in RETIRED.items():
        assert old not in names, f"{old} is still a rule"
        rule = registry.get(old)
        assert rule is not None and new in (rule.name, rule.code), old
    assert registry.get("Q1202").name == KEPT


def test_old_names_in_a_configuration_file(registry, tmp_path: Path) -> None:
    config_file = tmp_path / "qcow2lint.yaml"
    config_file.write_text(
        f"rules:\n  {OLD}: {{level: warning}}\n  {GONE}: disable\nper-file-ignores:\n  'skip/*.qcow2': [{OLD}]\n"
    )
    config = load_config(registry, config_file)
    assert str(config.rules[NEW].severity) == "warning"
    assert not config.rules[KEPT].enabled
    assert NEW in config.ignored_rules(tmp_path / "skip" / "a.qcow2")
    jsonschema.validate(yaml.safe_load(config_file.read_text()), config_schema(registry))


def test_an_old_and_a_new_name_for_one_rule_is_a_key_given_twice(registry, tmp_path: Path) -> None:
    config_file = tmp_path / "qcow2lint.yaml"
    config_file.write_text(f"rules:\n  {OLD}: disable\n  {NEW}: enable\n")
    with pytest.raises(Exception, match="given twice"):
        load_config(registry, config_file)


def test_old_names_on_the_command_line(registry, tmp_path: Path) -> None:
    assert select_rules(registry, OLD) == [NEW]
    assert select_rules(registry, GONE, "--ignore") == [KEPT]
    config = load_config(registry, start=tmp_path)
    chosen = apply_command_line(config, registry, CommandLine(select=(OLD, GONE)))
    assert {name for name, settings in chosen.rules.items() if settings.enabled} == {NEW, KEPT}
    ignored = apply_command_line(config, registry, CommandLine(ignore=(OLD,)))
    assert not ignored.rules[NEW].enabled


def test_old_names_select_through_the_cli() -> None:
    demo = REPO_ROOT / "examples" / "demo.qcow2"
    for selector in (OLD, GONE, "Q1202"):
        result = run_cli("check", "--select", selector, "--format", "json", demo)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["images"][0]["findings"] == []
    assert run_cli("check", "--select", "metadata-refcount-gt-two", demo).returncode == 2


def _finding(rule: str, code: str, location: str) -> Finding:
    return Finding(rule, code, Severity.ERROR, 0x30000, location, "refcount 2, must be 1")


def _baseline(*entries: tuple[str, str, int]) -> str:
    findings = [
        {"image": "a.qcow2", "rule": rule, "location": location, "count": count} for rule, location, count in entries
    ]
    return json.dumps({"tool": "qcow2lint", "version": 1, "findings": findings})


def test_old_names_in_a_baseline() -> None:
    """A renamed rule's entries count for its new name; a retired
    duplicate's entries stood for the same findings as the surviving rule's
    beside them, so they are not counted twice."""
    text = _baseline((OLD, "l1", 1), (GONE, "header.autoclear_features", 1), (KEPT, "header.autoclear_features", 1))
    counts = parse_baseline(text)
    assert counts == {("a.qcow2", NEW, "l1"): 1, ("a.qcow2", KEPT, "header.autoclear_features"): 1}
    accept = BaselineFilter(text)
    report = ImageReport(
        "a.qcow2", (_finding(NEW, "Q1111", "l1"), _finding(KEPT, "Q1411", "header.autoclear_features"))
    )
    assert accept(report).findings == ()
    assert accept.stale() == 0
    # Without the surviving rule's entry, the retired one's still counts.
    assert parse_baseline(_baseline((GONE, "header.autoclear_features", 2))) == {
        ("a.qcow2", KEPT, "header.autoclear_features"): 2
    }


def test_the_tables_do_not_overlap() -> None:
    assert not set(RENAMED) & set(MERGED)
    assert set(RETIRED) == set(RENAMED) | set(MERGED)
