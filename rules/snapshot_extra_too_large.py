"""A snapshot table entry has more extra data than QEMU accepts.

The spec sets no limit on a snapshot's extra_data_size, but QEMU refuses
more than QCOW_MAX_SNAPSHOT_EXTRA_DATA = 1024 bytes.

QEMU: refuses to open the image ("Too much extra metadata in snapshot table
entry N", with the hint "You can force-remove this extra metadata with
qemu-img check -r all"); `qemu-img check` fails ("ERROR failed to read the
snapshot table: Too much extra metadata ...").  Repair: `qemu-img check -r
all` truncates the extra data to 1024 bytes ("Discarding too much extra
metadata in snapshot table entry N (X > 1024)").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry

NAME = "snapshot-extra-too-large"
CODE = "Q1301"
SEVERITY = "error"
SCOPE = SnapshotEntry
QEMU_REFUSES = ("Too much extra metadata in snapshot table entry N",)


def check(entry, ctx):
    """Flag extra_data_size above 1024."""
    if entry.extra_data_size > spec.MAX_SNAPSHOT_EXTRA_DATA:
        yield Problem(
            entry.field_offset("extra_data_size"),
            f"{entry.path}.extra_data_size",
            f"snapshot extra_data_size is {entry.extra_data_size}; QEMU accepts at most "
            f"{spec.MAX_SNAPSHOT_EXTRA_DATA} bytes",
        )
