"""nb_snapshots counts blank entries after the real end of the snapshot table.

nb_snapshots must equal the number of entries in the snapshot table (spec,
"Snapshots").  qcow2lint cannot know the real table size, so it uses this
precise reading: an entry is *blank* when its L1 table offset is 0, its
l1_size is 0 and its id is empty.  QEMU never writes such an entry (it gives
every snapshot an L1 table offset and an id, even on a 0-byte disk), and it
is what the zero fill after the last real entry of the table's cluster looks
like when nb_snapshots is too high.  The rule fires when the entries the
file holds end with one or more blank entries; it reports how many real
entries precede them.  Entries past the end of the file are reported by
snapshot-table-out-of-file instead.  Blank entries in the middle of the
table are corrupted entries, not a count mismatch, and are left to the
per-entry rules.

QEMU: reads the blank entries as snapshots with no L1 table and no id; in
a v3 image `qemu-img check` reports each as incomplete ("ERROR snapshot
table entry N is incomplete"), and `qemu-img check -r all` rewrites them
as complete but still empty snapshots, which this rule still reports.
Repair: delete the blank snapshots one by one with `qemu-img snapshot -d ''
IMG` (it matches the empty id), or set nb_snapshots to the real count.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotTable
from qcow2lint.rulekit import blank_snapshot_tail

NAME = "snapshot-count-mismatch"
CODE = "Q1314"
SEVERITY = "error"
SCOPE = SnapshotTable
STRICTER_THAN_QEMU = (
    "nb_snapshots counts entries that are not snapshots: QEMU lists snapshots that never "
    "existed, with no L1 table. A version 2 image has no incomplete-entry check in "
    "`qemu-img check`, which then says nothing."
)


def check(table, ctx):
    """Flag a table that ends with blank entries."""
    real = blank_snapshot_tail(table)
    if real < len(table.entries):
        yield Problem(
            ctx.header.field_offset("nb_snapshots"),
            "header.nb_snapshots",
            f"nb_snapshots is {table.nb_snapshots} but entries {real}..{len(table.entries) - 1} are blank "
            f"(L1 table offset 0, l1_size 0, empty id); the table has {real} real entries",
            about=table.file_offset,
        )
