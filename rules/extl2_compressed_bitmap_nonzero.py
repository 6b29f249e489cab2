"""A compressed extended L2 entry has a non-zero subcluster bitmap.

Compressed clusters have no subclusters: the bitmap word of a compressed
extended L2 entry must be 0 (spec, "Extended L2 Entries").

QEMU: `qemu-img check` counts a corruption ("ERROR compressed cluster N with
non-zero subcluster allocation bitmap").
"""

import numpy as np

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits

NAME = "extl2-compressed-bitmap-nonzero"
CODE = "Q0803"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag compressed entries with a subcluster bitmap."""
    if not batch.extended:
        return
    hits = predicates.compressed(batch) & (batch.bitmaps != 0)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, b: f"compressed cluster (L2 entry {e:#x}) has subcluster bitmap {b:#018x}, must be 0",
    )
