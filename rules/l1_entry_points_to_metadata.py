"""An L2 table lands on another structure's cluster.

The L2 table an L1 entry names must own its cluster: it must not be the
header, a refcount structure, another L1 table, the snapshot table, a bitmap
structure, the encryption area or a data cluster (spec, "Cluster mapping").

QEMU: only caught when a refcount disagrees ("ERROR cluster N refcount=R
reference=M"); otherwise guest writes through the L2 table corrupt the
other structure.  Repair: none in place; recover the data with
`qemu-img convert`.
"""

from qcow2lint.findings import Problem
from qcow2lint.results import RefcountCheck

NAME = "l1-entry-points-to-metadata"
CODE = "Q0605"
SEVERITY = "error"
SCOPE = RefcountCheck
STRICTER_THAN_QEMU = (
    "An L2 table placed on another structure makes guest writes through it overwrite that "
    "structure. `qemu-img check` sees it only when a refcount disagrees, and a raised "
    "refcount hides it."
)
L2_KINDS = {"active-l2", "inactive-l2"}


def check(refcounts, ctx):
    """Report L2 tables that overlap other metadata."""
    for overlap in refcounts.overlaps:
        if overlap.category != "l2-table":
            continue
        first, second = overlap.first, overlap.second
        table, other = (first, second) if first.kind in L2_KINDS else (second, first)
        yield Problem(
            overlap.cluster * ctx.cluster_size,
            table.label,
            f"L2 table {table.label} lands on {other.kind} {other.label} at {other.offset:#x} "
            f"(cluster {overlap.cluster})",
            # QEMU reads the other structure's bytes as L2 entries.
            covers=(table.offset, table.offset + table.length),
            reads="l2",
        )
