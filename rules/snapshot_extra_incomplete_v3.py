"""A v3 snapshot table entry lacks the mandatory extra data.

In a version 3 image every snapshot table entry must have at least 16 bytes
of extra data: the 64-bit VM state size and the virtual disk size (spec,
"Snapshots", snapshot table entry).

QEMU: opens the image (it assumes the current disk size), but `qemu-img
check` counts a corruption ("ERROR snapshot table entry N is incomplete").
Repair: `qemu-img check -r all` rewrites the snapshot table with complete
entries.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry

NAME = "snapshot-extra-incomplete-v3"
CODE = "Q1302"
SEVERITY = "error"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag a v3 entry with extra_data_size below 16."""
    if ctx.header.version >= 3 and entry.extra_data_size < spec.MIN_V3_SNAPSHOT_EXTRA_DATA:
        yield Problem(
            entry.field_offset("extra_data_size"),
            f"{entry.path}.extra_data_size",
            f"snapshot extra_data_size is {entry.extra_data_size}; a v3 image needs at least "
            f"{spec.MIN_V3_SNAPSHOT_EXTRA_DATA} (vm_state_size and disk_size)",
        )
