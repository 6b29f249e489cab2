"""Test-side builders for the encryption, placement and snapshot rule tests.

Like :mod:`imagebuilder`, the builders never use ``qcow2lint``: they rewrite
whole structures that the one-field setters of :class:`imagebuilder.Qcow2Image`
cannot change in place (an extension area without one extension, a snapshot
table entry with a different amount of extra data, id or name), and build
the few extra clean images these tests need (:data:`RECIPES`, built by
harness.Bases). Layouts follow the qcow2 specification (header extensions;
the snapshot table).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import imagebuilder as ib

KIB = 1024
MIB = 1 << 20
CLUSTER = 64 * KIB

SNAPSHOT_HEADER = struct.Struct(">QIHHIIQII")  # §1.8 bytes 0..39
LUKS_SLOTS_OFFSET = 208  # §1.10: 8 key slots of 48 bytes from here
LUKS_SLOT_SIZE = 48


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def beyond_eof(img: ib.Qcow2Image, clusters: int = 4) -> int:
    """A cluster-aligned offset ``clusters`` clusters past the end of the file."""
    return _round_up(img.file_size, img.cluster_size) + clusters * img.cluster_size


# --------------------------------------------------------------------------
# Header extensions
# --------------------------------------------------------------------------


def rewrite_extensions(img: ib.Qcow2Image, extensions: list[tuple[int, bytes]]) -> list[int]:
    """Rewrite the extension area from header_length: ``(type, data)`` pairs,
    each padded to 8, then an end marker; the old area is zero-filled.

    Returns the offset of each extension's framing.
    """
    start = img.header_length
    old_end = start
    for ext in img.extensions:
        old_end = ext.offset + 8 + _round_up(ext.length, 8)
    body, offsets = b"", []
    for ext_type, data in extensions:
        offsets.append(start + len(body))
        body += struct.pack(">II", ext_type, len(data)) + data + bytes(_round_up(len(data), 8) - len(data))
    body += bytes(8)
    img.write_bytes(start, body.ljust(old_end + 8 - start, b"\0"))
    img.reload()
    return offsets


def extension_list(img: ib.Qcow2Image) -> list[tuple[int, bytes]]:
    """The image's extensions as ``(type, data)`` pairs, for :func:`rewrite_extensions`."""
    return [(ext.type, ext.data) for ext in img.extensions]


def luks_area(img: ib.Qcow2Image) -> tuple[int, int]:
    """``(offset, length)`` from the full disk encryption header pointer."""
    ext = img.extension(ib.EXT_CRYPTO)
    return struct.unpack(">QQ", ext.data[:16])


def luks_slot_offset(img: ib.Qcow2Image, slot: int) -> int:
    """Absolute offset of LUKS key slot ``slot`` (its ``active`` word)."""
    return luks_area(img)[0] + LUKS_SLOTS_OFFSET + slot * LUKS_SLOT_SIZE


# --------------------------------------------------------------------------
# Snapshot table
# --------------------------------------------------------------------------


@dataclass
class RawSnapshot:
    """One snapshot table entry, raw enough to rewrite with other sizes."""

    l1_table_offset: int
    l1_size: int
    date_sec: int = 0
    date_nsec: int = 0
    vm_clock_nsec: int = 0
    vm_state_size32: int = 0
    extra: bytes = b""
    id_str: bytes = b""
    name: bytes = b""
    #: when set, written as extra_data_size instead of len(extra)
    extra_data_size: int | None = None
    offset: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        """The entry's bytes, padded to a multiple of 8."""
        extra_size = len(self.extra) if self.extra_data_size is None else self.extra_data_size
        head = SNAPSHOT_HEADER.pack(
            self.l1_table_offset,
            self.l1_size,
            len(self.id_str),
            len(self.name),
            self.date_sec,
            self.date_nsec,
            self.vm_clock_nsec,
            self.vm_state_size32,
            extra_size,
        )
        raw = head + self.extra + self.id_str + self.name
        return raw + bytes(_round_up(len(raw), 8) - len(raw))

    @property
    def id_offset(self) -> int:
        """Absolute offset of the id string (after :func:`rewrite_snapshot_table`)."""
        return self.offset + ib.SNAPSHOT_FIXED + len(self.extra)


def read_snapshots(img: ib.Qcow2Image) -> list[RawSnapshot]:
    """The snapshot table entries as :class:`RawSnapshot` records."""
    result = []
    for snap in img.snapshots:
        f = snap.fields
        extra = img.read_bytes(snap.offset + ib.SNAPSHOT_FIXED, f["extra_data_size"])
        result.append(
            RawSnapshot(
                f["l1_table_offset"],
                f["l1_size"],
                f["date_sec"],
                f["date_nsec"],
                f["vm_clock_nsec"],
                f["vm_state_size"],
                extra,
                snap.id_str,
                snap.name,
                offset=snap.offset,
            )
        )
    return result


def rewrite_snapshot_table(img: ib.Qcow2Image, entries: list[RawSnapshot]) -> list[RawSnapshot]:
    """Write ``entries`` at snapshots_offset, one after another (8-aligned),
    zero-fill the rest of the old table and set nb_snapshots.

    The table must still fit in the clusters QEMU allocated for it (a small
    table sits alone in its cluster). Returns the entries with their offsets.
    """
    start = img.header["snapshots_offset"]
    old_end = start + sum(s.size for s in img.snapshots)
    body, placed = b"", []
    for entry in entries:
        placed.append(replace(entry, offset=start + len(body)))
        body += entry.encode()
    assert _round_up(start + len(body), img.cluster_size) <= _round_up(old_end, img.cluster_size), "table grew"
    img.write_bytes(start, body + bytes(max(old_end - start - len(body), 0)))
    img.set_header("nb_snapshots", len(entries))
    img.reload()
    return placed


def extra_data(vm_state_size: int = 0, disk_size: int = 0, icount: int | None = None) -> bytes:
    """Snapshot extra data (§1.8): vm_state_size, disk_size[, icount]."""
    data = struct.pack(">QQ", vm_state_size, disk_size)
    return data if icount is None else data + struct.pack(">q", icount)


# --------------------------------------------------------------------------
# Extra clean images (built once per session by the test modules)
# --------------------------------------------------------------------------


def _snap_small(path: Path) -> None:
    """v3, 16 MiB, data, one snapshot taken last: the snapshot table is the
    last thing in the file, which ends right after the entry's name."""
    ib.create(path, 16 * MIB, {"cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.snapshot_create(path, "snap1")


def _snap_two(path: Path) -> None:
    """v3, 16 MiB, two snapshots (ids 1 and 2)."""
    _snap_small(path)
    ib.write(path, CLUSTER, CLUSTER, 0x11)
    ib.snapshot_create(path, "snap2")


def _v2_snapshot(path: Path) -> None:
    """v2 (compat=0.10), 16 MiB, data, one snapshot."""
    ib.create(path, 16 * MIB, {"compat": "0.10", "cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.snapshot_create(path, "old")


def _snap_resized(path: Path) -> None:
    """v3 snapshot, then the disk grown by 1 MiB: disk sizes differ, legally."""
    _snap_small(path)
    ib.run_tool([ib.QEMU_IMG, "resize", "-q", path, "+1M"])


def _snap_empty_disk(path: Path) -> None:
    """A 0-byte v3 disk with a snapshot: QEMU writes l1_size 0 and L1 offset 0."""
    ib.create(path, 0)
    ib.snapshot_create(path, "empty")


def _shrunk(path: Path) -> None:
    """A 3 GiB disk shrunk to 1 GiB: the L1 table keeps its 6 entries."""
    ib.create(path, 3 << 30, {"cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.run_tool([ib.QEMU_IMG, "resize", "-q", "--shrink", path, "1G"])


RECIPES: dict[str, Callable[[Path], None]] = {
    "snap-small": _snap_small,
    "snap-two": _snap_two,
    "v2-snapshot": _v2_snapshot,
    "snap-resized": _snap_resized,
    "snap-empty-disk": _snap_empty_disk,
    "shrunk": _shrunk,
}
