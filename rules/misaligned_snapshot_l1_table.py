"""A snapshot's L1 table offset is not cluster-aligned.

Each snapshot table entry's L1 table offset must be cluster-aligned (spec,
"Snapshots", snapshot table entry).

QEMU: `qemu-img check` counts a corruption ("ERROR snapshot <id> (<name>)
l1_offset=...: L1 table is not cluster aligned; snapshot table entry
corrupted"); applying or deleting the snapshot is refused ("Snapshot L1
table offset invalid").  Repair: delete the snapshot
(`qemu-img snapshot -d ID IMG`), then `qemu-img check -r leaks`.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import misaligned

NAME = "misaligned-snapshot-l1-table"
CODE = "Q1304"
SEVERITY = "error"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag a snapshot whose L1 table offset is misaligned."""
    if misaligned(entry.l1_table_offset, ctx.cluster_size):
        yield Problem(
            entry.file_offset,
            f"{entry.path}.l1_table_offset",
            f"snapshot L1 table offset {entry.l1_table_offset:#x} is not a multiple of the cluster size "
            f"{ctx.cluster_size:#x}",
            # qemu-img check skips the table: what only the snapshot
            # references (the entries at the aligned offset) leaks.
            covers=(entry.l1_table_offset, entry.l1_table_offset + entry.l1_size * 8),
            lost=(entry.l1_table_offset - entry.l1_table_offset % ctx.cluster_size, entry.l1_size, "l1"),
        )
