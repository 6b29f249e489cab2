"""A snapshot's disk size differs from the current virtual size.

The extra data of a snapshot records the virtual disk size at snapshot time
(spec, "Snapshots").  A different size is legal (the disk was resized after
the snapshot) and shown for information.  QEMU compares whole sectors, so
the current size is rounded down to a multiple of 512.

Off by default (a legal layout `qemu-img resize` writes after a snapshot);
the `pedantic` preset enables it.

QEMU: applying the snapshot (`qemu-img snapshot -a`) resizes the disk back
to the snapshot's size.  Repair: not needed.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry

NAME = "snapshot-disk-size-differs"
CODE = "Q1316"
SEVERITY = "info"
SCOPE = SnapshotEntry
DEFAULT_ENABLED = False


def check(entry, ctx):
    """Report a recorded disk_size other than the current size."""
    current = ctx.header.size // 512 * 512
    if entry.disk_size is not None and entry.disk_size != current:
        yield Problem(
            entry.field_offset("disk_size"),
            f"{entry.path}.disk_size",
            f"snapshot disk_size is {entry.disk_size}, the current virtual size is {current}",
        )
