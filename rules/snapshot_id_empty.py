"""A snapshot has an empty id.

Every snapshot needs an id string, unique in the table (spec, "Snapshots",
snapshot table entry: "Unique ID string for the snapshot").  QEMU generates
ids ("1", "2", ...) itself and never writes an empty one.  The blank entries
that snapshot-count-mismatch reports are not flagged here.

QEMU: accepts it silently, but the snapshot can then only be addressed by
its name.  Repair: delete and re-create the snapshot, or convert the
image.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import blank_snapshot_tail, shown

NAME = "snapshot-id-empty"
CODE = "Q1310"
SEVERITY = "warning"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag id_str_size 0."""
    if entry.id_str_size == 0 and entry.index < blank_snapshot_tail(ctx.image.snapshots):
        yield Problem(
            entry.field_offset("id_str_size"),
            f"{entry.path}.id_str_size",
            f"snapshot {entry.index} (name {shown(entry.name)}) has an empty id",
        )
