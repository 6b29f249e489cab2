"""The header claims more snapshots than QEMU allows.

nb_snapshots must not exceed QEMU's QCOW_MAX_SNAPSHOTS of 65536.  qcow2lint
reads at most the first 65536 entries.

QEMU: refuses to open the image ("Snapshot table too large"); `qemu-img
check` fails ("ERROR snapshot table too large" and "You can force-remove all
N overhanging snapshots with qemu-img check -r all").  Repair: `qemu-img
check -r all` drops the entries past 65536 ("Discarding N overhanging
snapshots").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "snapshot-count-too-large"
CODE = "Q0511"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Snapshot table too large",)


def check(header, ctx):
    """Flag nb_snapshots above 65536."""
    if header.nb_snapshots > spec.MAX_SNAPSHOTS:
        yield Problem(
            header.field_offset("nb_snapshots"),
            "header.nb_snapshots",
            f"nb_snapshots is {header.nb_snapshots}; QEMU allows at most {spec.MAX_SNAPSHOTS}",
        )
