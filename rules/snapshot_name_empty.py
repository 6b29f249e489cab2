"""A snapshot has an empty name.

A snapshot's name may be empty (spec, "Snapshots"); this is shown for
information because such a snapshot can only be addressed by its id.  The
blank entries that snapshot-count-mismatch reports are not flagged here.

QEMU: accepts it silently.  Repair: not needed.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import blank_snapshot_tail, shown

NAME = "snapshot-name-empty"
CODE = "Q1312"
SEVERITY = "info"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Report name_size 0."""
    if entry.name_size == 0 and entry.index < blank_snapshot_tail(ctx.image.snapshots):
        yield Problem(
            entry.field_offset("name_size"),
            f"{entry.path}.name_size",
            f"snapshot {entry.index} (id {shown(entry.id_str)}) has an empty name",
        )
