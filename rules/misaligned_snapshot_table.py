"""The snapshot table offset is not cluster-aligned.

With nb_snapshots > 0, snapshot_offset must be a multiple of the cluster
size (spec, "Header").

QEMU: refuses to open the image ("Snapshot table offset invalid");
`qemu-img check` fails ("ERROR snapshot table offset invalid").
"""

from qcow2lint.records import SnapshotTable
from qcow2lint.rulekit import header_field_misaligned

NAME = "misaligned-snapshot-table"
CODE = "Q0510"
SEVERITY = "error"
SCOPE = SnapshotTable


def check(table, ctx):
    """Flag a misaligned snapshot_offset."""
    yield from header_field_misaligned(ctx, "snapshot_offset", "the snapshot table")
