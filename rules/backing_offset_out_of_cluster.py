"""The backing file name offset lies past the end of cluster 0.

The backing file name is stored in cluster 0, after the header extensions
(spec, "Header", backing_file_offset), so backing_file_offset cannot exceed
the cluster size.  Not judged when cluster_bits itself is outside QEMU's
range.

QEMU: refuses to open the image ("Invalid backing file offset").  Repair:
point backing_file_offset back at the name by hand, or, if the name is
lost, set offset and size to 0 and `qemu-img rebase -u -b BACKING -F FMT`.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import cluster_bits_supported

NAME = "backing-offset-out-of-cluster"
CODE = "Q0310"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Invalid backing file offset",)


def check(header, ctx):
    """Flag backing_file_offset above the cluster size."""
    if cluster_bits_supported(header) and header.backing_file_offset > header.cluster_size:
        yield Problem(
            header.field_offset("backing_file_offset"),
            "header.backing_file_offset",
            f"backing_file_offset {header.backing_file_offset:#x} is past the end of cluster 0 "
            f"({header.cluster_size:#x} bytes)",
        )
