"""Generated documentation stays in step with the registry."""

from __future__ import annotations

import re

from harness import REPO_ROOT, TESTS_DIR, run_cli
from qcow2lint.registry import load_registry
from qcow2lint.report.rulesdoc import ANSWERED, rules_markdown, rules_table


def test_docs_rules_md_is_generated_from_the_registry() -> None:
    """Regenerate with `qcow2lint rules --markdown > docs/rules.md`."""
    assert (REPO_ROOT / "docs" / "rules.md").read_text() == rules_markdown(load_registry())
    assert run_cli("rules", "--markdown").stdout == (REPO_ROOT / "docs" / "rules.md").read_text()


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
