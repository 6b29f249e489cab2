"""A cluster has more references than the refcount width can count.

With refcount_bits = 1 << refcount_order, a refcount cannot exceed
2^refcount_bits - 1 (spec, "Host cluster management", refcount table).  A
cluster shared by more snapshots than that cannot be counted.

QEMU: `qemu-img check` counts a corruption per extra reference ("ERROR:
overflow cluster offset=0x..." + "Use qemu-img amend to increase the
refcount entry width or qemu-img convert to create a clean copy if the
image cannot be opened for writing").  Repair:
`qemu-img amend -o refcount_bits=16 IMG`.
"""

import numpy as np

from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import cluster_span, refcount_hits

NAME = "refcount-overflow"
CODE = "Q1108"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Flag clusters whose reference count passes the refcount maximum."""
    clusters = np.array(refcounts.overflows, np.int64) // ctx.cluster_size
    yield from refcount_hits(
        ctx,
        clusters,
        lambda c: (
            f"cluster {c} (offset {c * ctx.cluster_size:#x}) has more references than "
            f"{ctx.header.refcount_bits}-bit refcounts can count (maximum {refcounts.refcount_max})"
        ),
        refs="extra",
        run=lambda a, b: (
            f"{cluster_span(ctx, a, b)} each have more references than "
            f"{ctx.header.refcount_bits}-bit refcounts can count (maximum {refcounts.refcount_max})"
        ),
    )
