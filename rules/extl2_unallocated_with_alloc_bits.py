"""An unallocated extended L2 entry marks subclusters allocated.

A cluster without a host offset can have no allocated subclusters: bitmap
bits 0-31 must be 0 (zero bits 32-63 are fine) (spec, "Extended L2
Entries").

QEMU: `qemu-img check` counts a corruption ("ERROR: Unallocated cluster has
non-zero subcluster allocation map"); guest I/O fails ("Invalid cluster
entry found").
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "extl2-unallocated-with-alloc-bits"
CODE = "Q0802"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag unallocated clusters with allocation bits."""
    if not batch.extended:
        return
    unallocated = ~predicates.allocated(batch) & ~predicates.compressed(batch)
    hits = unallocated & ((batch.bitmaps & u64(spec.SUBCLUSTER_ALLOC_MASK)) != 0)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, b: (
            f"unallocated cluster (L2 entry {e:#x}) has allocation bits {b & spec.SUBCLUSTER_ALLOC_MASK:#x} set"
        ),
    )
