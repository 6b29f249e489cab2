"""A version 2 image has internal snapshots, so it cannot be resized.

Version 2 snapshot entries need not record the disk size, so QEMU refuses to
resize a v2 image that has snapshots (spec, "Snapshots").  This is legal and
shown for information.

Off by default (a legal layout `qemu-img snapshot` writes on a v2 image);
the `pedantic` preset enables it.

QEMU: `qemu-img resize` fails ("Can't resize a v2 image which has
snapshots").  Repair: if the image must grow, upgrade it first
(`qemu-img amend -o compat=1.1 IMG`) or delete the snapshots.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotTable

NAME = "snapshot-v2-resize"
CODE = "Q1315"
SEVERITY = "info"
SCOPE = SnapshotTable
DEFAULT_ENABLED = False


def check(table, ctx):
    """Report snapshots in a v2 image."""
    if ctx.header.version == 2:
        yield Problem(
            ctx.header.field_offset("nb_snapshots"),
            "header.nb_snapshots",
            f"version 2 image with {table.nb_snapshots} snapshots: QEMU cannot resize it",
        )
