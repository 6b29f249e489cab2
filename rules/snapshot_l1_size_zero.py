"""A snapshot of a non-empty disk has an empty L1 table.

A snapshot's l1_size 0 means it maps no cluster at all, although its disk
(disk_size from the extra data, else the current virtual size) is not empty
(spec, "Snapshots").  A snapshot of a 0-byte disk legitimately has l1_size 0
and is not flagged; nor are the blank entries that snapshot-count-mismatch
reports.

QEMU: accepts it; the clusters only that snapshot referenced show as leaks
in `qemu-img check`, and applying it gives an empty disk.  Repair: delete
the snapshot (`qemu-img snapshot -d ID IMG`), then `qemu-img check -r
leaks`.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import blank_snapshot_tail, snapshot_disk_size

NAME = "snapshot-l1-size-zero"
CODE = "Q1307"
SEVERITY = "warning"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag l1_size 0 in a snapshot whose disk size is not 0."""
    disk_size = snapshot_disk_size(entry, ctx.header)
    if entry.l1_size == 0 and disk_size > 0 and entry.index < blank_snapshot_tail(ctx.image.snapshots):
        yield Problem(
            entry.field_offset("l1_size"),
            f"{entry.path}.l1_size",
            f"snapshot l1_size is 0 but its disk is {disk_size} bytes: the snapshot maps no data",
        )
