"""An image with an external data file has internal snapshots.

Internal snapshots cannot work with an external data file: the guest data is
not copied on write (spec, "Header", incompatible bit 2, External data
file).

QEMU: `qemu-img check` counts a corruption ("ERROR N snapshots in image with
data file").  Repair: delete the snapshots (`qemu-img snapshot -d`).
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "data-file-snapshots"
CODE = "Q1003"
SEVERITY = "error"
SCOPE = Header


def check(header, ctx):
    """Flag nb_snapshots > 0 together with incompatible bit 2."""
    if header.has_data_file and header.nb_snapshots:
        yield Problem(
            header.field_offset("nb_snapshots"),
            "header.nb_snapshots",
            f"{header.nb_snapshots} snapshots in an image with an external data file",
        )
