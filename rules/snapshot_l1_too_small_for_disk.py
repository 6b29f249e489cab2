"""A snapshot's L1 table is too small for the snapshot's disk size.

A snapshot's l1_size should be at least size_to_l1(disk_size) =
ceil(disk_size / (cluster_size * l2_entries)), where disk_size comes from
the entry's extra data (else the current virtual size, as QEMU assumes)
(spec, "Snapshots").  An l1_size of 0 is reported by snapshot-l1-size-zero
instead.

QEMU: does not check it (`qemu-img check` only shows the L2 tables that
the missing entries referenced as leaks).  Applying the snapshot (`qemu-img snapshot -a`)
resizes the disk to disk_size, and the part past the snapshot's L1 table
reads as unallocated (zeros, or the backing file).  Repair: none for the
lost mappings; delete the snapshot if it is not needed (`qemu-img snapshot
-d ID IMG`).
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import size_to_l1, snapshot_disk_size

NAME = "snapshot-l1-too-small-for-disk"
CODE = "Q1308"
SEVERITY = "warning"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag 0 < l1_size < size_to_l1(disk_size)."""
    disk_size = snapshot_disk_size(entry, ctx.header)
    needed = size_to_l1(ctx.header, disk_size)
    if 0 < entry.l1_size < needed:
        yield Problem(
            entry.field_offset("l1_size"),
            f"{entry.path}.l1_size",
            f"snapshot l1_size {entry.l1_size} is too small for its disk size {disk_size}: {needed} entries are needed",
        )
