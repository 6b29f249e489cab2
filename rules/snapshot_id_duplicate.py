"""Two snapshots have the same id.

Snapshot ids must be unique (spec, "Snapshots", snapshot table entry:
"Unique ID string for the snapshot").  Each entry whose id an earlier
entry already has is flagged.  Empty ids are left to snapshot-id-empty, and
the blank entries that snapshot-count-mismatch reports are ignored.

QEMU: accepts it silently and finds snapshots by the first match, so the
later snapshot cannot be applied or deleted by id.  Repair: address it by
name, e.g. `qemu-img snapshot -d NAME IMG`, and re-create it.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotTable
from qcow2lint.rulekit import blank_snapshot_tail, shown

NAME = "snapshot-id-duplicate"
CODE = "Q1311"
SEVERITY = "error"
SCOPE = SnapshotTable
STRICTER_THAN_QEMU = (
    "The specification requires unique snapshot ids; QEMU finds snapshots by the first "
    "match, so the later snapshot cannot be applied or deleted by its id. `qemu-img "
    "check` does not compare ids."
)


def check(table, ctx):
    """Flag every entry that repeats an earlier entry's id."""
    first: dict[bytes, int] = {}
    for entry in table.entries[: blank_snapshot_tail(table)]:
        if not entry.id_str:
            continue
        if entry.id_str in first:
            yield Problem(
                entry.id_str_offset,
                f"{entry.path}.id_str",
                f"snapshot {entry.index} has the id {shown(entry.id_str)} of snapshot {first[entry.id_str]}",
            )
        else:
            first[entry.id_str] = entry.index
