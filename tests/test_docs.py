"""Generated documentation stays in step with the registry."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from harness import REPO_ROOT, TESTS_DIR, run_cli

from qcow2lint import gen
from qcow2lint.registry import load_registry
from qcow2lint.report.rulesdoc import ANSWERED, rules_markdown, rules_table


def test_docs_rules_md_is_generated_from_the_registry() -> None:
    """Regenerate with `python -m qcow2lint.gen`."""
    assert (REPO_ROOT / "docs" / "rules.md").read_text() == rules_markdown(load_registry())
    assert run_cli("rules", "--markdown").stdout == (REPO_ROOT / "docs" / "rules.md").read_text()


@pytest.mark.parametrize("name", gen.GENERATED)
def test_the_generated_file_is_current(name: str) -> None:
    text = gen.expected(REPO_ROOT, load_registry())[name]
    assert (REPO_ROOT / name).read_text() == text, f"{name} is stale: run `python -m qcow2lint.gen` in the repository"


def test_the_generator_names_the_stale_file_and_rewrites_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    for name in gen.expected(REPO_ROOT, load_registry()):  # the fixed files and the rule pages
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    assert gen.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "config.yaml").write_text("rules: {}\n")
    assert gen.main(["--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out == "config.yaml is stale: run `python -m qcow2lint.gen` in the repository\n"
    assert gen.main([str(tmp_path)]) == 0
    assert (tmp_path / "config.yaml").read_text() == (REPO_ROOT / "config.yaml").read_text()
    assert gen.stale(tmp_path, load_registry()) == []


def test_readme_lists_every_rule() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    section = re.search(r"<!-- rules:start[^>]*-->\n(.*?)<!-- rules:end -->", readme, re.S)
    assert section is not None
    assert section.group(1) == rules_table(load_registry())


def test_every_catalogue_rule_is_a_rule_or_answered() -> None:
    """Every rule name of the defect catalogue (tests/data/catalogue-rules.txt)
    is registered or answered in docs/rules.md."""
    listed = (TESTS_DIR / "data" / "catalogue-rules.txt").read_text().splitlines()
    names = {line.strip() for line in listed if line.strip() and not line.startswith("#")}
    assert len(names) > 100, "the vendored catalogue list is incomplete"
    registered = {rule.name for rule in load_registry()}
    missing = sorted(names - registered - set(ANSWERED))
    assert not missing, f"catalogue rows neither a rule nor answered in docs/rules.md: {missing}"


def test_rule_documentation_cites_the_spec_not_the_catalogue() -> None:
    """Users get the qcow2 specification and docs/rules.md, not the
    project's internal defect catalogue: no rule docstring and no comment in
    the package cites its sections."""
    sources = [*(REPO_ROOT / "rules").glob("*.py"), *(REPO_ROOT / "qcow2lint").rglob("*.py")]
    citing = [path.name for path in sources if "catalogue §" in path.read_text()]
    assert citing == []
