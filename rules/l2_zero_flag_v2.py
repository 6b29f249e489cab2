"""A version 2 image has an L2 entry with the zero flag.

The zero flag (bit 0 of an L2 entry) exists only in version 3 images (spec,
"Cluster mapping", Standard Cluster Descriptor).

QEMU: `qemu-img check` is silent, but the first guest read of the cluster
fails ("Zero cluster entry found in pre-v3 image").  Repair: upgrade the
image with `qemu-img amend -o compat=1.1`, or convert it.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "l2-zero-flag-v2"
CODE = "Q0704"
SEVERITY = "error"
SCOPE = L2Tables
STRICTER_THAN_QEMU = (
    "The zero flag does not exist in version 2 images: the guest read of the cluster "
    'fails ("Zero cluster entry found in pre-v3 image"). `qemu-img check` does not look '
    "at the flag."
)


def check(batch, ctx):
    """Flag uncompressed L2 entries with bit 0 set in a v2 image."""
    if ctx.header.version != 2 or batch.extended or not batch.may_have(spec.OFLAG_ZERO):
        return
    zero = ((batch.entries & u64(spec.OFLAG_ZERO)) != 0) & ~predicates.compressed(batch)
    yield from l2_hits(
        ctx, batch, np.flatnonzero(zero), lambda e, _: f"L2 entry {e:#x} sets the zero flag (bit 0), which v2 lacks"
    )
