"""Extended L2 entries are enabled with clusters smaller than 16 KiB.

With extended L2 (incompatible bit 4) each cluster has 32 subclusters, and
QEMU needs a subcluster to be at least 512 bytes, so cluster_bits must be at
least 14 (spec, "Extended L2 Entries").

QEMU: refuses to open the image ("Unsupported subcluster size: N", N =
cluster size / 32).  Repair: none in place (the cluster size cannot
change); the L2 tables were written for the extended layout, so clearing
the bit would misread them.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "extl2-cluster-too-small"
CODE = "Q0211"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Unsupported subcluster size: N",)


def check(header, ctx):
    """Flag extended L2 with cluster_bits 9..13."""
    too_small = spec.MIN_CLUSTER_BITS <= header.cluster_bits < spec.MIN_EXTL2_CLUSTER_BITS
    if header.version >= 3 and header.extended_l2 and too_small:
        yield Problem(
            header.field_offset("cluster_bits"),
            "header.cluster_bits",
            f"extended L2 (incompatible bit 4) needs cluster_bits >= {spec.MIN_EXTL2_CLUSTER_BITS}, but cluster_bits "
            f"is {header.cluster_bits}: subclusters of {header.cluster_size // spec.SUBCLUSTERS_PER_CLUSTER} bytes",
        )
