"""header_length is larger than the cluster size.

The header and its extensions live in cluster 0, so header_length cannot
exceed the cluster size (spec, "Header").  Only a v3 header has the field
(version 2 implies 72).  Not judged when cluster_bits itself is outside
QEMU's range (header-cluster-bits-range reports that).

QEMU: refuses to open the image ("qcow2 header exceeds cluster size").
Repair: set header_length back to 112 (what QEMU writes) by hand.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import cluster_bits_supported

NAME = "header-length-too-large"
CODE = "Q0108"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("qcow2 header exceeds cluster size",)


def check(header, ctx):
    """Flag header_length above the cluster size."""
    if cluster_bits_supported(header) and header.header_length > header.cluster_size:
        yield Problem(
            header.field_offset("header_length"),
            "header.header_length",
            f"header_length {header.header_length} exceeds the cluster size {header.cluster_size}",
        )
