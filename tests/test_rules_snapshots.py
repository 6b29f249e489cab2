"""Rule tests for internal snapshots (catalogue §2.13).

Table-driven like tests/test_rules.py: each row patches a real qemu-img
image (snapshots made with `qemu-img snapshot -c`, v2 and v3) to have
exactly one defect. VM state cannot be saved offline, so vm_state_size is
patched in. For every rule, (a) the patched image fires it once with the
catalogue's severity at the patched field, (b) a clean base does not fire
it, (c) ``rules: {NAME: disable}`` silences it; ``test_qemu_agrees`` proves
each recipe makes the defect it claims.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

import imagebuilder as ib
from conftest import ImageCache, format_findings, lint_json, rules_fired, write_config
from snapshot_builders import (
    Bases,
    ExtraImages,
    QemuExpect,
    RawSnapshot,
    Row,
    Target,
    assert_disabled_in_config,
    assert_points_at,
    assert_qemu_agrees,
    assert_quiet_on_clean_base,
    assert_row_fires_once,
    beyond_eof,
    extra_data,
    first_row_per_rule,
    read_snapshots,
    rewrite_snapshot_table,
    run_qemu,
)

TIB = 1 << 40
MAX_L1_ENTRIES = 0x2000000 // 8  # QCOW_MAX_L1_SIZE / 8
MAX_SNAPSHOTS_SIZE = 64 << 20  # QCOW_MAX_SNAPSHOTS_SIZE


@pytest.fixture(scope="session")
def bases(base_images: ImageCache, tmp_path_factory: pytest.TempPathFactory) -> Bases:
    """The shared bases plus the extra images of snapshot_builders, built once."""
    return Bases(base_images, ExtraImages(tmp_path_factory.mktemp("snapshot-bases")))


def _path(snap: RawSnapshot, index: int = 0) -> str:
    return re.escape(f"snapshots[{index}]({snap.id_str.decode()})")


# ---------------------------------------------------------------------------
# patch functions
# ---------------------------------------------------------------------------


def _field(name: str, value, suffix: str | None = None, index: int = 0):
    """Set one fixed field of entry ``index``; the finding names ``suffix``."""

    def patch(img: ib.Qcow2Image) -> Target:
        snap = read_snapshots(img)[index]
        off = img.set_snapshot_field(index, name, value(img))
        return Target((off,), _path(snap, index) + re.escape(f".{suffix or name}"))

    return patch


def _rewrite(change, field_offset: int, suffix: str, index: int = 0):
    """Rewrite the table with entry ``index`` changed by ``change(entry)``;
    the finding points ``field_offset`` bytes into that entry."""

    def patch(img: ib.Qcow2Image) -> Target:
        entries = read_snapshots(img)
        entries[index] = change(entries[index])
        snap = rewrite_snapshot_table(img, entries)[index]
        return Target((snap.offset + field_offset,), _path(snap, index) + re.escape(f".{suffix}"))

    return patch


def _with(**changes):
    def change(snap: RawSnapshot) -> RawSnapshot:
        for name, value in changes.items():
            setattr(snap, name, value(snap) if callable(value) else value)
        return snap

    return change


def patch_table_too_big(img: ib.Qcow2Image) -> Target:
    """A sparse 1010-entry table past the old end of the file, each entry with
    1024 bytes of extra data, an 8-byte id and a 65535-byte name: it passes
    64 MiB with entry 1007. The entries reuse the active L1 table."""
    start = beyond_eof(img, 1)
    extra_size, id_size, name_size, count = 1024, 8, 65535, 1010
    step = (40 + extra_size + id_size + name_size + 7) // 8 * 8
    extra = extra_data(0, img.header["size"]).ljust(extra_size, b"\0")
    for i in range(count):
        entry = RawSnapshot(img.header["l1_table_offset"], img.header["l1_size"], extra=extra,
                            id_str=b"%08d" % i, name=b"n")  # fmt: skip
        # header, extra data and id only: the 65535-byte names stay sparse zeros
        head = entry.encode()[: 40 + extra_size + id_size]
        img.write_bytes(start + i * step, head[:14] + struct.pack(">H", name_size) + head[16:])
    img.truncate(start + count * step)
    img.set_header("snapshots_offset", start)
    img.set_header("nb_snapshots", count)
    crossing = next(i for i in range(count) if i * step + 40 + extra_size + id_size + name_size > MAX_SNAPSHOTS_SIZE)
    assert crossing == 1007
    return Target((start + crossing * step,), re.escape(f"snapshots[{crossing}](00001007)"))


def patch_duplicate_id(img: ib.Qcow2Image) -> Target:
    """Entry 1 (id "2") gets entry 0's id "1"."""
    first, second = read_snapshots(img)
    assert (first.id_str, second.id_str) == (b"1", b"2")
    off = img.write_bytes(second.offset + 40 + len(second.extra), first.id_str)
    return Target((off,), re.escape("snapshots[1](1).id_str"))


def patch_table_moved_past_eof(img: ib.Qcow2Image) -> Target:
    """snapshots_offset moved 4 clusters past the end of the file."""
    off = img.set_header("snapshots_offset", beyond_eof(img))
    return Target((off,), re.escape("header.snapshot_offset"))


def patch_table_cut(img: ib.Qcow2Image) -> Target:
    """The file, which ends with the snapshot table, cut by 3 bytes: the
    last 3 bytes of the name are gone (QEMU reads them as zeros)."""
    snap = read_snapshots(img)[0]
    end = snap.offset + 40 + len(snap.extra) + len(snap.id_str) + len(snap.name)
    assert img.file_size == end, "recipe must end the file with the table"
    img.truncate(end - 3)
    return Target((ib.HEADER_FIELDS["snapshots_offset"][0],), re.escape("header.snapshot_offset"))


def patch_count_too_high(img: ib.Qcow2Image) -> Target:
    """nb_snapshots 1 -> 3: entries 1 and 2 are the zero fill of the table's cluster."""
    snap = read_snapshots(img)[0]
    end = snap.offset + len(snap.encode())
    assert img.read_bytes(end, 80) == bytes(80)
    off = img.set_header("nb_snapshots", 3)
    return Target((off,), re.escape("header.nb_snapshots"))


def _unchanged(offset_of, location: str):
    """No patch: the real base image has the property itself."""

    def patch(img: ib.Qcow2Image) -> Target:
        return Target((offset_of(img),), location)

    return patch


def _disk_size_offset(img: ib.Qcow2Image) -> int:
    return read_snapshots(img)[0].offset + 48


ROWS: list[Row] = [
    Row("snapshot-extra-too-large", "error", "snapshot",
        _rewrite(_with(extra=lambda s: s.extra.ljust(1025, b"\0")), 36, "extra_data_size"),
        QemuExpect("info", 1, "Too much extra metadata in snapshot table entry 0")),
    Row("snapshot-extra-incomplete-v3", "error", "snapshot",
        _rewrite(_with(extra=lambda s: s.extra[:8]), 36, "extra_data_size"),
        QemuExpect("check", 2, "ERROR snapshot table entry 0 is incomplete"), "8-bytes"),
    Row("snapshot-extra-incomplete-v3", "error", "snapshot",
        _rewrite(_with(extra=b""), 36, "extra_data_size"),
        QemuExpect("check", 2, "ERROR snapshot table entry 0 is incomplete"), "none"),
    Row("snapshot-table-too-big", "error", "snap-small", patch_table_too_big,
        QemuExpect("info", 1, "Snapshot table is too big")),
    Row("snapshot-l1-too-large", "error", "snapshot", _field("l1_size", lambda img: MAX_L1_ENTRIES + 1),
        QemuExpect("check", 2, "L1 table is too large; snapshot table entry corrupted")),
    Row("snapshot-l1-out-of-file", "error", "snapshot", _field("l1_table_offset", beyond_eof),
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more")),
    Row("snapshot-l1-size-zero", "warning", "snapshot", _field("l1_size", lambda img: 0),
        QemuExpect("check", 3, "Leaked cluster")),
    # 2 GiB disk: 4 L1 entries needed; the snapshot's data in l1[2] is lost
    Row("snapshot-l1-too-small-for-disk", "warning", "snapshot", _field("l1_size", lambda img: 1),
        QemuExpect("check", 3, "Leaked cluster")),
    Row("snapshot-vmstate-beyond-l1", "warning", "snapshot",
        _rewrite(_with(extra=lambda s: extra_data(TIB, 2 << 30) + s.extra[16:]), 40, "vm_state_size"),
        QemuExpect("check", 0), "64-bit"),
    # v2 entry without extra data: the 32-bit field counts; 16 MiB + 2 GiB need 5 L1 entries
    Row("snapshot-vmstate-beyond-l1", "warning", "v2-snapshot",
        _rewrite(_with(extra=b"", vm_state_size32=2 << 30), 32, "vm_state_size"),
        QemuExpect("check", 0), "32-bit-v2"),
    Row("snapshot-id-empty", "warning", "snapshot", _rewrite(_with(id_str=b""), 12, "id_str_size"),
        QemuExpect("check", 0)),
    Row("snapshot-id-duplicate", "error", "snap-two", patch_duplicate_id, QemuExpect("check", 0)),
    Row("snapshot-name-empty", "info", "snapshot", _rewrite(_with(name=b""), 14, "name_size"),
        QemuExpect("check", 0)),
    Row("snapshot-table-out-of-file", "error", "snapshot", patch_table_moved_past_eof,
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more"), "moved"),
    Row("snapshot-table-out-of-file", "error", "snap-small", patch_table_cut, QemuExpect("check", 0), "cut"),
    Row("snapshot-count-mismatch", "error", "snapshot", patch_count_too_high,
        QemuExpect("check", 2, "ERROR snapshot table entry 1 is incomplete")),
    Row("snapshot-v2-resize", "info", "v2-snapshot",
        _unchanged(lambda img: ib.HEADER_FIELDS["nb_snapshots"][0], re.escape("header.nb_snapshots")),
        QemuExpect("resize", 1, "Can't resize a v2 image which has snapshots"), clean_base="snapshot"),
    Row("snapshot-disk-size-differs", "info", "snap-resized",
        _unchanged(_disk_size_offset, re.escape("snapshots[0](1).disk_size")),
        QemuExpect("check", 0), "resized", clean_base="snapshot"),
    Row("snapshot-disk-size-differs", "info", "snapshot",
        lambda img: Target((img.write_int(_disk_size_offset(img), "Q", 1 << 30),),
                           re.escape("snapshots[0](1).disk_size")),
        QemuExpect("check", 0), "patched"),
]  # fmt: skip

FIRST_ROW_PER_RULE = first_row_per_rule(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_qemu_agrees(row: Row, bases: Bases, tmp_path: Path) -> None:
    """The recipe really makes the defect: QEMU reacts as the catalogue says."""
    assert_qemu_agrees(row, bases, tmp_path)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_rule_fires(row: Row, bases: Bases, tmp_path: Path) -> None:
    """(a) The defect is reported once, with its severity, at the patched field."""
    assert_row_fires_once(row, bases, tmp_path)


@pytest.mark.parametrize("row", FIRST_ROW_PER_RULE, ids=lambda r: r.rule)
def test_rule_quiet_on_clean_base(row: Row, bases: Bases) -> None:
    """(b) A clean base does not fire the rule."""
    assert_quiet_on_clean_base(row, bases)


@pytest.mark.parametrize("row", FIRST_ROW_PER_RULE, ids=lambda r: r.rule)
def test_rule_disabled_in_config(row: Row, bases: Bases, tmp_path: Path) -> None:
    """(c) ``rules: {NAME: disable}`` silences the rule on the patched image."""
    assert_disabled_in_config(row, bases, tmp_path)


# ---------------------------------------------------------------------------
# definitions, options, several defects at once
# ---------------------------------------------------------------------------

SNAPSHOT_RULES = {row.rule for row in ROWS}


def test_blank_entries_are_one_count_mismatch(bases: Bases, tmp_path: Path) -> None:
    """The zero entries nb_snapshots claims are one count mismatch (and, as
    QEMU's check says, incomplete), not also empty ids, names and L1 tables."""
    path = bases.copy("snapshot", tmp_path)
    patch_count_too_high(ib.Qcow2Image(path))
    fired = rules_fired(lint_json(path))
    assert len(fired["snapshot-count-mismatch"]) == 1
    assert "entries 1..2 are blank" in fired["snapshot-count-mismatch"][0]["message"]
    assert len(fired["snapshot-extra-incomplete-v3"]) == 2
    quiet = {"snapshot-id-empty", "snapshot-name-empty", "snapshot-l1-size-zero", "snapshot-id-duplicate"}
    assert not quiet & set(fired), format_findings(f for r in quiet & set(fired) for f in fired[r])


def test_blank_entry_before_a_real_one_is_not_a_count_mismatch(bases: Bases, tmp_path: Path) -> None:
    """A blank entry followed by a real one is a damaged entry: the per-entry
    rules report it, snapshot-count-mismatch does not."""
    path = bases.copy("snap-two", tmp_path)
    img = ib.Qcow2Image(path)
    entries = read_snapshots(img)
    entries[0] = RawSnapshot(0, 0, extra=entries[0].extra, name=entries[0].name)
    first = rewrite_snapshot_table(img, entries)[0]
    fired = rules_fired(lint_json(path))
    assert "snapshot-count-mismatch" not in fired
    assert [f["offset"] for f in fired["snapshot-id-empty"]] == [first.offset + 12]
    assert [f["offset"] for f in fired["snapshot-l1-size-zero"]] == [first.offset + 8]


def test_snapshot_of_empty_disk_has_no_l1_and_is_fine(bases: Bases) -> None:
    """QEMU gives a snapshot of a 0-byte disk L1 offset 0 and l1_size 0."""
    img = ib.Qcow2Image(bases.path("snap-empty-disk"))
    snap = read_snapshots(img)[0]
    assert (snap.l1_table_offset, snap.l1_size, snap.id_str) == (0, 0, b"1")
    fired = rules_fired(lint_json(bases.path("snap-empty-disk")))
    assert not SNAPSHOT_RULES & set(fired), format_findings(f for r in SNAPSHOT_RULES & set(fired) for f in fired[r])


def test_tolerate_partial_option(bases: Bases, tmp_path: Path) -> None:
    """``tolerate-partial: true`` reports only tables that end one cluster or
    more past the end of the file, as `qemu-img check` does."""
    config = write_config(tmp_path, "rules:\n  snapshot-table-out-of-file: {tolerate-partial: true}\n")
    cut = bases.copy("snap-small", tmp_path)
    patch_table_cut(ib.Qcow2Image(cut))
    assert "snapshot-table-out-of-file" in rules_fired(lint_json(cut))
    assert "snapshot-table-out-of-file" not in rules_fired(lint_json(cut, "--config", str(config)))
    moved = bases.copy("snapshot", tmp_path)
    patch_table_moved_past_eof(ib.Qcow2Image(moved))
    assert "snapshot-table-out-of-file" in rules_fired(lint_json(moved, "--config", str(config)))


@pytest.mark.parametrize("name", ["snapshot", "snap-small", "snap-two", "v2-snapshot", "snap-resized", "snap-empty-disk"])
def test_real_snapshot_images_quiet(name: str, bases: Bases) -> None:
    """Real images with snapshots pass `qemu-img check` and get no warning or
    error from the snapshot rules (infos such as snapshot-v2-resize are fine)."""
    qemu = ib.qemu_check(bases.path(name))
    assert qemu.returncode == 0, qemu.output
    found = bases.report(name)["images"][0]["findings"]
    bad = [f for f in found if f["rule"] in SNAPSHOT_RULES and f["severity"] != "info"]
    assert not bad, format_findings(bad)


def test_multi_defect_snapshot_image(bases: Bases, tmp_path: Path) -> None:
    """An image QEMU refuses for several reasons gets every finding in one run."""
    path = bases.copy("snapshot", tmp_path)
    img = ib.Qcow2Image(path)
    snap = read_snapshots(img)[0]
    snap.extra = extra_data(TIB, img.header["size"]).ljust(1025, b"\0")  # too much, and a huge VM state
    snap.name = b""
    snap.l1_table_offset = beyond_eof(img)
    snap = rewrite_snapshot_table(img, [snap])[0]
    l1_off = img.set_header("l1_size", 2)
    rt_off = img.set_header("refcount_table_clusters", 0)
    info = run_qemu(QemuExpect("info", 1), path, ib.PLAIN)
    assert info.returncode == 1, info.output
    report = lint_json(path)
    fired = rules_fired(report)
    entry = re.escape("snapshots[0](1)")
    expected = {
        "snapshot-extra-too-large": Target((snap.offset + 36,), entry + r"\.extra_data_size"),
        "snapshot-vmstate-beyond-l1": Target((snap.offset + 40,), entry + r"\.vm_state_size"),
        "snapshot-name-empty": Target((snap.offset + 14,), entry + r"\.name_size"),
        "snapshot-l1-out-of-file": Target((snap.offset,), entry + r"\.l1_table_offset"),
        "l1-too-small": Target((l1_off,), re.escape("header.l1_size")),
        "reftable-missing": Target((rt_off,), re.escape("header.refcount_table_clusters")),
    }
    missing = set(expected) - set(fired)
    assert not missing, f"missing {missing}:\n{format_findings(report['images'][0]['findings'])}"
    for rule, target in expected.items():
        assert len(fired[rule]) == 1, format_findings(fired[rule])
        assert_points_at(fired[rule][0], target)
    assert report["_returncode"] == 1
