"""A zero cluster keeps a preallocated host offset that is not cluster-aligned.

An L2 entry with the zero flag and a non-zero host offset (QEMU's
ZERO_ALLOC) keeps that cluster allocated; the offset must be cluster-aligned
(spec, "Cluster mapping", Standard Cluster Descriptor).  Only standard L2
entries have a zero flag.

QEMU: `qemu-img check` counts a corruption ("ERROR offset=...: Preallocated
cluster is not properly aligned; L2 entry corrupted.").  Repair:
`qemu-img check -r all` turns the entry into a plain zero cluster.
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits

NAME = "misaligned-preallocated-cluster"
CODE = "Q0703"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag zero-flagged L2 entries with a misaligned host offset."""
    yield from l2_hits(
        ctx,
        batch,
        predicates.l2_misaligned(batch, ctx.cluster_size, spec.CLUSTER_ZERO_ALLOC),
        lambda e, _: (
            f"preallocated zero cluster offset {e & spec.L2E_OFFSET_MASK:#x} (L2 entry {e:#x}) "
            f"is not a multiple of the cluster size {ctx.cluster_size:#x}"
        ),
    )
