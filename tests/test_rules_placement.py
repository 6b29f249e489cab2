"""Rule tests for encryption (catalogue §2.4) and table placement (§2.5).

Table-driven like tests/test_rules.py (the rows are in rows_placement.py, run
in-process through harness.lint): each row patches a real qemu-img
image to have exactly one defect. For every rule, (a) the patched image
fires it once with the catalogue's severity at the patched field, (b) the
clean base does not fire it, (c) ``rules: {NAME: disable}`` silences it.
``test_qemu_agrees`` proves each recipe makes the defect it claims: QEMU
(`qemu-img check`, or `qemu-img info` where QEMU refuses to open the
image) reacts as the catalogue says.
"""

from __future__ import annotations

import re
from pathlib import Path

import imagebuilder as ib
from baseimages import BASES
from harness import (
    Bases,
    QemuExpect,
    RowImages,
    Target,
    assert_all_found,
    format_findings,
    lint,
    run_qemu,
)
from rows_placement import MAX_L1_ENTRIES, MAX_REFTABLE_BYTES, ROWS, patch_fde_tail
from snapshot_builders import luks_slot_offset

# ---------------------------------------------------------------------------
# cascades that must not happen
# ---------------------------------------------------------------------------


def test_short_fde_pointer_reports_only_its_length(row_images: RowImages) -> None:
    """An 8-byte pointer has no length field: only fde-ext-bad-length fires,
    not the key slot, tail or out-of-file rules that would judge a length 0."""
    path, _ = row_images.get(ROWS[3])
    assert ROWS[3].variant == "8"
    fired = lint(path).fired
    assert "fde-ext-bad-length" in fired
    quiet = {"luks-keyslot-bad", "fde-tail-not-zero", "fde-area-out-of-file", "luks-bad-magic"}
    assert not quiet & set(fired), format_findings(f for r in quiet & set(fired) for f in fired[r])


def test_too_large_tables_are_not_also_out_of_file(base_images: Bases, tmp_path: Path) -> None:
    """A table QEMU refuses as too large is reported as such, not also as
    out of file or larger than needed."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    img.set_header("l1_size", MAX_L1_ENTRIES + 1)
    img.set_header("refcount_table_clusters", MAX_REFTABLE_BYTES // img.cluster_size + 1)
    fired = lint(path).fired
    assert {"l1-too-large", "reftable-too-large"} <= set(fired)
    assert not {"l1-out-of-file", "reftable-out-of-file", "l1-larger-than-needed"} & set(fired)


def test_partial_overrun_is_tolerated(base_images: Bases, tmp_path: Path) -> None:
    """An L1 table that ends less than one cluster past EOF is tolerated, as
    by QEMU's check; one that ends exactly one cluster past it is not."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    size = img.file_size
    assert size % img.cluster_size == 0
    # l1_size 4: a 32-byte table.  Ending 1 cluster - 8 bytes past EOF:
    img.set_header("l1_table_offset", size + img.cluster_size - 40)
    assert "l1-out-of-file" not in lint(path).fired
    img.set_header("l1_table_offset", size + img.cluster_size - 32)
    assert "l1-out-of-file" in lint(path).fired


def test_multi_defect_luks_image(base_images: Bases, tmp_path: Path) -> None:
    """A LUKS image QEMU refuses for several reasons gets every finding in one run."""
    path = base_images.copy("luks", tmp_path)
    img = ib.Qcow2Image(path)
    slot_off = luks_slot_offset(img, 2)
    img.write_int(slot_off, "I", 0xFFFFFFFF)
    tail_target = patch_fde_tail(img)
    l1_off = img.set_header("l1_size", 0)
    rt_off = img.set_header("refcount_table_clusters", 0)
    info = run_qemu(QemuExpect("info", 1), path, ib.PLAIN, tmp_path)
    assert info.returncode == 1, info.output
    expected = {
        "luks-keyslot-bad": Target((slot_off,), re.escape("encryption.luks.key_slots[2].active")),
        "fde-tail-not-zero": tail_target,
        "l1-too-small": Target((l1_off,), re.escape("header.l1_size")),
        "reftable-missing": Target((rt_off,), re.escape("header.refcount_table_clusters")),
    }
    report = lint(path)
    assert_all_found(report, expected)
    assert report.exit_code == 1


def test_real_images_quiet(base_images: Bases) -> None:
    """Real qemu-img images give no warning or error from these rules (the
    shrunk disk's larger L1 table is info)."""
    mine = {row.rule for row in ROWS}
    for name in ("shrunk", "snap-empty-disk", *BASES):
        bad = [f for f in base_images.lint(name).findings if f["rule"] in mine and f["severity"] != "info"]
        assert not bad, format_findings(bad)
