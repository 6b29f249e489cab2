"""Table-driven rule tests: one row per rule (plus a few variants), from
rows_basic.py.  For every rule:

(a) the patched image fires the rule once, with the catalogue's severity, at
    the patched offset and structure path;
(b) the clean base does not fire it;
(c) with ``rules: {NAME: disable}`` it does not fire.

``test_qemu_agrees`` checks the recipes themselves (not qcow2lint): where
the catalogue says ``qemu-img check`` notices a defect, it must notice ours
with the catalogue's message, and where it says QEMU is silent, check must
pass.  That proves each patch makes the defect it claims to.

The rows run in-process (harness.lint); the options that reach the command
line (fail level, exit codes) are tested through the CLI at the end.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from pathlib import Path

import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import (
    Bases,
    Linted,
    Target,
    assert_all_found,
    format_findings,
    lint,
    lint_json,
    rules_fired,
    run_cli,
    write_config,
)
from rows_basic import MISALIGN, REQUIRED_RULES, ROWS, _patched_l2, path_bitmap, path_header, path_l1


def test_every_required_rule_has_a_row() -> None:
    """The table covers the whole list of rules this suite is asked to test."""
    assert REQUIRED_RULES <= {row.rule for row in ROWS}


# ---------------------------------------------------------------------------
# look-alikes that the rules' conditions exclude
# ---------------------------------------------------------------------------


def _set_bitmap_flag_bit2(img: ib.Qcow2Image) -> None:
    # bit 2 is extra_data_compatible: defined by the spec (QEMU refuses it, a
    # different rule); only bits 3-31 are reserved (catalogue 1.9, 2.14)
    img.set_bitmap_field("bm0", "flags", img.bitmap("bm0").fields["flags"] | 0x4)


def _far_snapshot_offset_without_snapshots(img: ib.Qcow2Image) -> None:
    # QEMU validates snapshots_offset even when nb_snapshots is 0 and refuses
    # a misaligned one (test_rules_truncation.py); an aligned offset far past
    # the end of the file with no snapshots is accepted and is not this rule's
    assert img.header["nb_snapshots"] == 0
    img.set_header("snapshots_offset", 0x7FFF_FFFF_FFFF_0000)


def _zero_entry_with_copied(img: ib.Qcow2Image) -> None:
    # COPIED on an unallocated entry is l2-copied-on-unallocated, not a reserved bit
    l2_offset, _, _ = _patched_l2(img)
    img.set_l2(l2_offset, 7, ib.OFLAG_COPIED)


NEGATIVE: list[tuple[str, str, Callable[[ib.Qcow2Image], None]]] = [
    ("bitmap-flags-reserved", "bitmaps", _set_bitmap_flag_bit2),
    ("misaligned-snapshot-table", "v3", _far_snapshot_offset_without_snapshots),
    ("l2-reserved-bits", "v3", _zero_entry_with_copied),
]


@pytest.mark.parametrize("rule,base,patch", NEGATIVE, ids=[n[0] for n in NEGATIVE])
def test_rule_quiet_on_look_alike(
    rule: str, base: str, patch: Callable[[ib.Qcow2Image], None], base_images: Bases, tmp_path: Path
) -> None:
    """A change that resembles the defect but is outside the rule's condition."""
    path = base_images.copy(base, tmp_path)
    patch(ib.Qcow2Image(path))
    fired = lint(path).fired
    assert rule not in fired, format_findings(fired[rule])


# ---------------------------------------------------------------------------
# several rules and options together
# ---------------------------------------------------------------------------


def test_many_defects_in_one_image(base_images: Bases, tmp_path: Path) -> None:
    """Four unrelated defects in one image are all reported in a single run."""
    path = base_images.copy("bitmaps", tmp_path)
    img = ib.Qcow2Image(path)
    l1_off = img.set_l1(0, img.l1[0] | 0x100)
    incompat_off = img.set_header("incompatible_features", img.header["incompatible_features"] | 1 << 5)
    table_off = img.set_bitmap_field("bm0", "bitmap_table_offset", img.bitmap("bm0").table_offset + MISALIGN)
    pad_off = img.set_header_padding(0, 0x01)
    expected = {
        "l1-reserved-bits": Target((l1_off,), path_l1(0)),
        "incompat-unknown-bits": Target((incompat_off,), path_header("incompatible_features")),
        "misaligned-bitmap-table": Target(
            (table_off, img.bitmap("bm0").offset), path_bitmap(0, "bm0", ".bitmap_table_offset")
        ),
        "header-padding-nonzero": Target((pad_off, ib.HEADER_PADDING_OFFSET), path_header("padding")),
    }
    report = lint(path)
    assert_all_found(report, expected)
    assert report.exit_code == 1


def _flood_l2_reserved(base_images: Bases, tmp_path: Path) -> tuple[Path, int]:
    """Set reserved bit 1 in every entry of the first L2 table (8192 entries)."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    l2_offset = img.l1[0] & ib.L1E_OFFSET_MASK
    table = img.l2_tables[l2_offset]
    img.write_bytes(l2_offset, struct.pack(f">{len(table)}Q", *(e | 0x2 for e in table)))
    return path, len(table)


def _cap_check(report: Linted, total: int, cap: int) -> None:
    hits = report.fired.get("l2-reserved-bits", [])
    assert len(hits) == cap + 1, f"{len(hits)} findings, expected {cap} + 1 summary"
    summaries = [f for f in hits if re.search(rf"\band {total - cap} more\b", f["message"])]
    assert len(summaries) == 1, format_findings(hits[-3:])
    assert summaries[0]["rule"] == "l2-reserved-bits"


def test_findings_capped_at_100_by_default(base_images: Bases, tmp_path: Path) -> None:
    """8192 bad entries -> 100 findings plus one 'and 8092 more' finding."""
    path, total = _flood_l2_reserved(base_images, tmp_path)
    assert total == 8192
    _cap_check(lint(path), total, 100)


def test_findings_cap_configurable(base_images: Bases, tmp_path: Path) -> None:
    """``max-findings-per-rule: 5`` -> 5 findings plus 'and 8187 more'."""
    path, total = _flood_l2_reserved(base_images, tmp_path)
    _cap_check(lint(path, "max-findings-per-rule: 5\n"), total, 5)


def _set_padding(img: ib.Qcow2Image) -> None:
    img.set_header_padding(3, 0xFF)  # header-padding-nonzero: warning


def _set_compat_bit(img: ib.Qcow2Image) -> None:
    img.set_header("compatible_features", 1 << 7)  # compat-unknown-bits: info


@pytest.mark.parametrize(
    "patch,worst,exits",
    [
        (_set_padding, "warning", {None: 0, "error": 0, "warning": 1, "info": 1}),
        (_set_compat_bit, "info", {None: 0, "error": 0, "warning": 0, "info": 1}),
    ],
    ids=["warning-only", "info-only"],
)
def test_fail_level(
    patch: Callable[[ib.Qcow2Image], None],
    worst: str,
    exits: dict[str | None, int],
    base_images: Bases,
    tmp_path: Path,
) -> None:
    """``--fail-level`` decides which severities make the run exit 1 (default: error)."""
    path = base_images.copy("v3", tmp_path)
    patch(ib.Qcow2Image(path))
    found = lint(path).findings
    order = ["info", "warning", "error"]
    assert max((order.index(f["severity"]) for f in found), default=-1) == order.index(worst), format_findings(found)
    for level, expected in exits.items():
        args = ["check", str(path)] + ([] if level is None else ["--fail-level", level])
        result = run_cli(*args)
        assert result.returncode == expected, f"{args}: exit {result.returncode}\n{result.stdout}{result.stderr}"


def test_level_override_changes_severity(base_images: Bases, tmp_path: Path) -> None:
    """``{level: warning}`` reports an error rule as a warning and no longer fails the run."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    before = lint(path).fired["l1-reserved-bits"]
    assert [f["severity"] for f in before] == ["error"]
    override = "rules:\n  l1-reserved-bits:\n    level: warning\n"
    after = lint(path, override).fired["l1-reserved-bits"]
    assert [f["severity"] for f in after] == ["warning"]
    config = write_config(tmp_path, override)
    report = lint_json(path, "--config", str(config))
    assert [f["severity"] for f in rules_fired(report)["l1-reserved-bits"]] == ["warning"]
    others = [f for f in report["images"][0]["findings"] if f["severity"] == "error"]
    assert report["_returncode"] == (1 if others else 0), format_findings(others)
