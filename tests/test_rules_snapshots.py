"""Rule tests for internal snapshots (catalogue §2.13).

Table-driven like tests/test_rules.py (the rows are in rows_snapshots.py, run
in-process through harness.lint): each row patches a real qemu-img
image (snapshots made with `qemu-img snapshot -c`, v2 and v3) to have
exactly one defect. VM state cannot be saved offline, so vm_state_size is
patched in. For every rule, (a) the patched image fires it once with the
catalogue's severity at the patched field, (b) a clean base does not fire
it, (c) ``rules: {NAME: disable}`` silences it; ``test_qemu_agrees`` proves
each recipe makes the defect it claims.
"""

from __future__ import annotations

import re
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import (
    Bases,
    QemuExpect,
    Target,
    assert_all_found,
    format_findings,
    lint,
    run_qemu,
)
from rows_snapshots import ROWS, TIB, patch_count_too_high, patch_table_cut, patch_table_moved_past_eof
from snapshot_builders import RawSnapshot, beyond_eof, extra_data, read_snapshots, rewrite_snapshot_table

# ---------------------------------------------------------------------------
# definitions, options, several defects at once
# ---------------------------------------------------------------------------

SNAPSHOT_RULES = {row.rule for row in ROWS}


def test_blank_entries_are_one_count_mismatch(base_images: Bases, tmp_path: Path) -> None:
    """The zero entries nb_snapshots claims are one count mismatch (and, as
    QEMU's check says, incomplete), not also empty ids, names and L1 tables."""
    path = base_images.copy("snapshot", tmp_path)
    patch_count_too_high(ib.Qcow2Image(path))
    fired = lint(path).fired
    assert len(fired["snapshot-count-mismatch"]) == 1
    assert "entries 1..2 are blank" in fired["snapshot-count-mismatch"][0]["message"]
    assert len(fired["snapshot-extra-incomplete-v3"]) == 2
    quiet = {"snapshot-id-empty", "snapshot-name-empty", "snapshot-l1-size-zero", "snapshot-id-duplicate"}
    assert not quiet & set(fired), format_findings(f for r in quiet & set(fired) for f in fired[r])


def test_blank_entry_before_a_real_one_is_not_a_count_mismatch(base_images: Bases, tmp_path: Path) -> None:
    """A blank entry followed by a real one is a damaged entry: the per-entry
    rules report it, snapshot-count-mismatch does not."""
    path = base_images.copy("snap-two", tmp_path)
    img = ib.Qcow2Image(path)
    entries = read_snapshots(img)
    entries[0] = RawSnapshot(0, 0, extra=entries[0].extra, name=entries[0].name)
    first = rewrite_snapshot_table(img, entries)[0]
    fired = lint(path).fired
    assert "snapshot-count-mismatch" not in fired
    assert [f["offset"] for f in fired["snapshot-id-empty"]] == [first.offset + 12]
    assert [f["offset"] for f in fired["snapshot-l1-size-zero"]] == [first.offset + 8]


def test_snapshot_of_empty_disk_has_no_l1_and_is_fine(base_images: Bases) -> None:
    """QEMU gives a snapshot of a 0-byte disk L1 offset 0 and l1_size 0."""
    img = ib.Qcow2Image(base_images.path("snap-empty-disk"))
    snap = read_snapshots(img)[0]
    assert (snap.l1_table_offset, snap.l1_size, snap.id_str) == (0, 0, b"1")
    fired = lint(base_images.path("snap-empty-disk")).fired
    assert not SNAPSHOT_RULES & set(fired), format_findings(f for r in SNAPSHOT_RULES & set(fired) for f in fired[r])


def test_tolerate_partial_option(base_images: Bases, tmp_path: Path) -> None:
    """``tolerate-partial: true`` reports only tables that end one cluster or
    more past the end of the file, as `qemu-img check` does."""
    config = "rules:\n  snapshot-table-out-of-file: {tolerate-partial: true}\n"
    cut = base_images.copy("snap-small", tmp_path)
    patch_table_cut(ib.Qcow2Image(cut))
    assert "snapshot-table-out-of-file" in lint(cut).fired
    assert "snapshot-table-out-of-file" not in lint(cut, config).fired
    moved = base_images.copy("snapshot", tmp_path)
    patch_table_moved_past_eof(ib.Qcow2Image(moved))
    assert "snapshot-table-out-of-file" in lint(moved, config).fired


@pytest.mark.parametrize(
    "name", ["snapshot", "snap-small", "snap-two", "v2-snapshot", "snap-resized", "snap-empty-disk"]
)
def test_real_snapshot_images_quiet(name: str, base_images: Bases) -> None:
    """Real images with snapshots pass `qemu-img check` and get no warning or
    error from the snapshot rules (infos such as snapshot-v2-resize are fine)."""
    qemu = ib.qemu_check(base_images.path(name))
    assert qemu.returncode == 0, qemu.output
    found = base_images.lint(name).findings
    bad = [f for f in found if f["rule"] in SNAPSHOT_RULES and f["severity"] != "info"]
    assert not bad, format_findings(bad)


def test_multi_defect_snapshot_image(base_images: Bases, tmp_path: Path) -> None:
    """An image QEMU refuses for several reasons gets every finding in one run."""
    path = base_images.copy("snapshot", tmp_path)
    img = ib.Qcow2Image(path)
    snap = read_snapshots(img)[0]
    snap.extra = extra_data(TIB, img.header["size"]).ljust(1025, b"\0")  # too much, and a huge VM state
    snap.name = b""
    snap.l1_table_offset = beyond_eof(img)
    snap = rewrite_snapshot_table(img, [snap])[0]
    l1_off = img.set_header("l1_size", 2)
    rt_off = img.set_header("refcount_table_clusters", 0)
    info = run_qemu(QemuExpect("info", 1), path, ib.PLAIN, tmp_path)
    assert info.returncode == 1, info.output
    entry = re.escape("snapshots[0](1)")
    expected = {
        "snapshot-extra-too-large": Target((snap.offset + 36,), entry + r"\.extra_data_size"),
        "snapshot-vmstate-beyond-l1": Target((snap.offset + 40,), entry + r"\.vm_state_size"),
        "snapshot-name-empty": Target((snap.offset + 14,), entry + r"\.name_size"),
        "snapshot-l1-out-of-file": Target((snap.offset,), entry + r"\.l1_table_offset"),
        "l1-too-small": Target((l1_off,), re.escape("header.l1_size")),
        "reftable-missing": Target((rt_off,), re.escape("header.refcount_table_clusters")),
    }
    report = lint(path)
    assert_all_found(report, expected)
    assert report.exit_code == 1
