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

NAME = "snapshot-l1-too-large"
CODE = "Q1305"
SEVERITY = "error"
SCOPE = SnapshotEntry
MAX_ENTRIES = spec.MAX_L1_SIZE // 8


def check(entry, ctx):
    """Flag a snapshot l1_size above 4194304."""
    if entry.l1_size > MAX_ENTRIES:
        yield Problem(
            entry.field_offset("l1_size"), f"{entry.path}.l1_size",
            f"snapshot l1_size {entry.l1_size} makes a {entry.l1_size * spec.L1_ENTRY_SIZE}-byte L1 table; QEMU allows at "
            f"most {MAX_ENTRIES} entries ({spec.MAX_L1_SIZE} bytes)",
        )  # fmt: skip
