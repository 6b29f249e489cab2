"""An L2 entry maps guest data to a host offset that is not cluster-aligned.

For a normal (allocated, uncompressed) cluster the host offset (bits 9-55)
must be cluster-aligned (spec, "Cluster mapping", Standard Cluster
Descriptor).  Zero clusters with a preallocated offset are judged by
misaligned-preallocated-cluster.

QEMU: `qemu-img check` counts a corruption ("ERROR offset=...: Data cluster
is not properly aligned; L2 entry corrupted."); guest I/O fails ("Cluster
allocation offset 0x... unaligned").
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits

NAME = "misaligned-data-cluster"
CODE = "Q0702"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag normal L2 entries with a misaligned host offset."""
    yield from l2_hits(
        ctx,
        batch,
        predicates.l2_misaligned(batch, ctx.cluster_size, spec.CLUSTER_NORMAL),
        lambda e, _: (
            f"data cluster offset {e & spec.L2E_OFFSET_MASK:#x} (L2 entry {e:#x}) is not a "
            f"multiple of the cluster size {ctx.cluster_size:#x}"
        ),
        root=True,  # what the misaligned offset gives (data past the end of the file) follows
    )
