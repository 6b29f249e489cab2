"""A refcount block gives a non-zero refcount to a cluster past the end of the file.

Clusters past the end of the file are not in use, so their refcounts must be
0 (spec, "Host cluster management"), as after a truncation that left the
refcounts.

QEMU: silent: `qemu-img check` compares refcounts only up to the end of
the file.  Repair: `qemu-img convert`, or grow the file back if it was cut.
"""

import numpy as np

from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import cluster_span, refcount_hits

NAME = "refcount-beyond-eof"
CODE = "Q1109"
SEVERITY = "warning"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Flag non-zero stored refcounts of clusters past the end of the file."""
    stored = refcounts.stored
    start = -(-ctx.file_size // ctx.cluster_size)
    tail = stored.values(start, stored.length)
    counted = refcounts.computed[start : start + len(tail)]
    unused = np.ones(len(tail), bool)
    unused[: len(counted)] = counted == 0
    beyond = dict(stored.beyond)
    clusters = np.concatenate([start + np.flatnonzero((tail != 0) & unused), np.array(list(beyond), np.int64)])

    def refcount(c):
        return beyond[c] if c in beyond else int(tail[c - start])

    yield from refcount_hits(
        ctx,
        clusters,
        lambda c: (
            f"cluster {c} (offset {c * ctx.cluster_size:#x}) lies past the end of the file "
            f"({ctx.file_size} bytes) but has refcount {refcount(c)}"
        ),
        refs="missing",
        # 64-bit refcounts reach 2^64 - 1: keep the keys unsigned
        keys=(np.array([refcount(c) for c in clusters.tolist()], np.uint64),),
        run=lambda a, b: (
            f"{cluster_span(ctx, a, b)} lie past the end of the file ({ctx.file_size} bytes) "
            f"but each has refcount {refcount(a)}"
        ),
    )
