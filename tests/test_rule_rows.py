"""Every rule row of every row table (rows_*.py), run the same way.

A row is a clean base, a patch that makes one defect, and what QEMU does
with the result.  For every row:

(a) the patched image fires the rule (once, unless the row says otherwise)
    with the rule's severity and code, at the patched offset and structure
    path; the rules the row names as absent stay quiet;
(b) the rule's clean base does not fire it (first row of each rule);
(c) ``test_qemu_agrees`` proves the recipe: the clean base passes
    ``qemu-img check``, and QEMU (``qemu-img info`` / ``check`` / a
    ``qemu-io`` read or write) does with the patched image what the
    catalogue says.

``test_disabled_rules_are_silent`` is registry-wide: every registered rule
has a row, and a rule disabled in the configuration reports nothing on its
row's image.  Each family's own tests (several defects in one
image, options, look-alikes) stay in its ``test_rules_*.py``.

Codes and severities are the registry's: a rule declares them once.  The
module runs on one xdist worker (``--dist loadfile``), where each base and
row image is built once; its rows take some 10 s on one core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import (
    Bases,
    Row,
    RowImages,
    assert_qemu_agrees,
    assert_quiet_on_clean_base,
    assert_row_fires,
    first_row_per_rule,
    format_findings,
    lint,
    registry,
)
from row_tables import TABLES

#: Every row, as a pytest parameter grouped by its table.
ROWS = [pytest.param(row, id=f"{family}:{row.id}") for family, rows in TABLES.items() for row in rows]
FIRST_ROWS = [
    pytest.param(row, id=f"{family}:{row.rule}") for family, rows in TABLES.items() for row in first_row_per_rule(rows)
]


def test_row_ids_are_unique_and_every_rule_has_a_row() -> None:
    """Unique row ids in each table, and no registered rule without a row."""
    covered: set[str] = set()
    for family, rows in TABLES.items():
        ids = [row.id for row in rows]
        assert len(ids) == len(set(ids)), f"{family}: duplicate row ids"
        covered |= {row.rule for row in rows}
    registered = {rule.name for rule in registry()}
    assert covered == registered, (
        f"rules without a row: {sorted(registered - covered)}; rows of no rule: {sorted(covered - registered)}"
    )


@pytest.mark.parametrize("row", [p for p in ROWS if p.values[0].expectations])
def test_qemu_agrees(row: Row, row_images: RowImages, tmp_path: Path) -> None:
    """The recipe really makes the defect: QEMU reacts as the catalogue says."""
    assert_qemu_agrees(row, row_images, tmp_path)


@pytest.mark.parametrize("row", ROWS)
def test_rule_fires(row: Row, row_images: RowImages) -> None:
    """(a) The defect is reported once, with its rule's severity, at the patched structure."""
    assert_row_fires(row, row_images)


@pytest.mark.parametrize("row", FIRST_ROWS)
def test_rule_quiet_on_clean_base(row: Row, base_images: Bases) -> None:
    """(b) The unpatched base does not fire the rule."""
    assert_quiet_on_clean_base(row, base_images)


def test_disabled_rules_are_silent(row_images: RowImages) -> None:
    """A rule disabled in the configuration reports nothing, even where it
    fires: the image of each rule's first row (which fires it, test (a)),
    with that rule disabled and every other rule on (deep: the payload
    rules too), gives no finding of it.  (Every rule disabled at once is a
    usage error: a run that checks nothing.)"""
    for family, rows in TABLES.items():
        for row in first_row_per_rule(rows):
            path, _ = row_images.get(row)
            report = lint(path, f"extends: pedantic\nrules:\n  {row.rule}: disable\n", deep=True)
            fired = [f for f in report.findings if f["rule"] == row.rule]
            assert not fired, f"{family}:{row.id}:\n{format_findings(fired)}"


def test_rules_stricter_than_qemu_say_why() -> None:
    """A rule whose row image `qemu-img check` passes (the row proves it with
    `check(0)`) yet gets an error declares why (``STRICTER_THAN_QEMU``,
    rendered in docs/rules.md); a rule that declares it is an error rule."""
    rules = registry()
    stricter = {
        row.rule
        for rows in TABLES.values()
        for row in rows
        if not row.config
        and rules.get(row.rule).default_enabled
        and str(rules.get(row.rule).severity) == "error"
        and any(expect.tool == "check" and expect.returncode == 0 for expect in row.expectations)
    }
    assert stricter, "no row proves a rule stricter than qemu-img check: the condition above is broken"
    undeclared = sorted(name for name in stricter if not rules.get(name).stricter_than_qemu)
    assert not undeclared, f"error rules on images qemu-img check passes, without STRICTER_THAN_QEMU: {undeclared}"
    declared = {rule.name for rule in rules if rule.stricter_than_qemu}
    assert all(str(rules.get(name).severity) == "error" for name in declared)
