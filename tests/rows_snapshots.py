"""Internal snapshot rows (catalogue §2.13), run by tests/test_rule_rows.py
(and compared with qemu-img check by test_differential.py).

Each row patches a real qemu-img image (snapshots made with `qemu-img
snapshot -c`, v2 and v3) to have exactly one defect. VM state cannot be
saved offline, so vm_state_size is patched in.
"""

from __future__ import annotations

import re
import struct

import imagebuilder as ib
from harness import QemuExpect, Row, Target
from snapshot_builders import RawSnapshot, beyond_eof, extra_data, read_snapshots, rewrite_snapshot_table

TIB = 1 << 40
MAX_L1_ENTRIES = 0x2000000 // 8  # QCOW_MAX_L1_SIZE / 8
MAX_SNAPSHOTS_SIZE = 64 << 20  # QCOW_MAX_SNAPSHOTS_SIZE


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
        entry = RawSnapshot(
            img.header["l1_table_offset"], img.header["l1_size"], extra=extra, id_str=b"%08d" % i, name=b"n"
        )
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
    Row(
        "snapshot-extra-too-large",
        "snapshot",
        _rewrite(_with(extra=lambda s: s.extra.ljust(1025, b"\0")), 36, "extra_data_size"),
        QemuExpect("info", 1, "Too much extra metadata in snapshot table entry 0"),
    ),
    Row(
        "snapshot-extra-incomplete-v3",
        "snapshot",
        _rewrite(_with(extra=lambda s: s.extra[:8]), 36, "extra_data_size"),
        QemuExpect("check", 2, "ERROR snapshot table entry 0 is incomplete"),
        "8-bytes",
    ),
    Row(
        "snapshot-extra-incomplete-v3",
        "snapshot",
        _rewrite(_with(extra=b""), 36, "extra_data_size"),
        QemuExpect("check", 2, "ERROR snapshot table entry 0 is incomplete"),
        "none",
    ),
    Row(
        "snapshot-table-too-big",
        "snap-small",
        patch_table_too_big,
        QemuExpect("info", 1, "Snapshot table is too big"),
    ),
    Row(
        "snapshot-l1-too-large",
        "snapshot",
        _field("l1_size", lambda img: MAX_L1_ENTRIES + 1),
        QemuExpect("check", 2, "L1 table is too large; snapshot table entry corrupted"),
    ),
    Row(
        "snapshot-l1-out-of-file",
        "snapshot",
        _field("l1_table_offset", beyond_eof),
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more"),
    ),
    Row(
        "snapshot-l1-size-zero",
        "snapshot",
        _field("l1_size", lambda img: 0),
        QemuExpect("check", 3, "Leaked cluster"),
    ),
    # 2 GiB disk: 4 L1 entries needed; the snapshot's data in l1[2] is lost
    Row(
        "snapshot-l1-too-small-for-disk",
        "snapshot",
        _field("l1_size", lambda img: 1),
        QemuExpect("check", 3, "Leaked cluster"),
    ),
    Row(
        "snapshot-vmstate-beyond-l1",
        "snapshot",
        _rewrite(_with(extra=lambda s: extra_data(TIB, 2 << 30) + s.extra[16:]), 40, "vm_state_size"),
        QemuExpect("check", 0),
        "64-bit",
    ),
    # v2 entry without extra data: the 32-bit field counts; 16 MiB + 2 GiB need 5 L1 entries
    Row(
        "snapshot-vmstate-beyond-l1",
        "v2-snapshot",
        _rewrite(_with(extra=b"", vm_state_size32=2 << 30), 32, "vm_state_size"),
        QemuExpect("check", 0),
        "32-bit-v2",
    ),
    Row(
        "snapshot-id-empty",
        "snapshot",
        _rewrite(_with(id_str=b""), 12, "id_str_size"),
        QemuExpect("check", 0),
    ),
    Row("snapshot-id-duplicate", "snap-two", patch_duplicate_id, QemuExpect("check", 0)),
    Row("snapshot-name-empty", "snapshot", _rewrite(_with(name=b""), 14, "name_size"), QemuExpect("check", 0)),
    Row(
        "snapshot-table-out-of-file",
        "snapshot",
        patch_table_moved_past_eof,
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more"),
        "moved",
    ),
    Row("snapshot-table-out-of-file", "snap-small", patch_table_cut, QemuExpect("check", 0), "cut"),
    Row(
        "snapshot-count-mismatch",
        "snapshot",
        patch_count_too_high,
        QemuExpect("check", 2, "ERROR snapshot table entry 1 is incomplete"),
    ),
    Row(
        "snapshot-v2-resize",
        "v2-snapshot",
        _unchanged(lambda img: ib.HEADER_FIELDS["nb_snapshots"][0], re.escape("header.nb_snapshots")),
        QemuExpect("resize", 1, "Can't resize a v2 image which has snapshots"),
        clean_base="snapshot",
    ),
    Row(
        "snapshot-disk-size-differs",
        "snap-resized",
        _unchanged(_disk_size_offset, re.escape("snapshots[0](1).disk_size")),
        QemuExpect("check", 0),
        "resized",
        clean_base="snapshot",
    ),
    Row(
        "snapshot-disk-size-differs",
        "snapshot",
        lambda img: Target(
            (img.write_int(_disk_size_offset(img), "Q", 1 << 30),), re.escape("snapshots[0](1).disk_size")
        ),
        QemuExpect("check", 0),
        "patched",
    ),
]
