"""A snapshot's L1 table is larger than QEMU allows.

A snapshot's l1_size * 8 must not exceed QEMU's QCOW_MAX_L1_SIZE of 32 MiB,
so l1_size is at most 4194304 entries (the limit is noted in spec, "Header",
size).

QEMU: `qemu-img check` counts a corruption ("ERROR snapshot <id> (<name>)
l1_size=0x...: L1 table is too large; snapshot table entry corrupted"), and
applying or deleting the snapshot is refused ("Snapshot L1 table too
large").  Repair: the snapshot is lost; remove its entry (`qemu-img
snapshot -d` refuses it, so convert the image to drop all snapshots:
`qemu-img convert -O qcow2`).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import cluster_bits_supported, size_to_l1, snapshot_disk_size

NAME = "snapshot-l1-too-large"
CODE = "Q1305"
SEVERITY = "error"
SCOPE = SnapshotEntry
MAX_ENTRIES = spec.MAX_L1_SIZE // 8


def check(entry, ctx):
    """Flag a snapshot l1_size above 4194304."""
    if entry.l1_size > MAX_ENTRIES:
        header = ctx.header
        disk = snapshot_disk_size(entry, header)
        needed = min(size_to_l1(header, disk) if cluster_bits_supported(header) else 0, entry.l1_size)
        yield Problem(
            entry.field_offset("l1_size"),
            f"{entry.path}.l1_size",
            f"snapshot l1_size {entry.l1_size} makes a {entry.l1_size * spec.L1_ENTRY_SIZE}-byte L1 table; QEMU allows at "
            f"most {MAX_ENTRIES} entries ({spec.MAX_L1_SIZE} bytes)",
            # QEMU skips the table: what is read past the entries the disk
            # needs follows from this finding, and what only the needed
            # entries reference leaks.
            covers=(
                entry.l1_table_offset + needed * spec.L1_ENTRY_SIZE,
                entry.l1_table_offset + entry.l1_size * spec.L1_ENTRY_SIZE,
            ),
            reads="l1",
            lost=(entry.l1_table_offset, needed, "l1"),
        )
