"""An extended L2 entry marks subclusters both allocated and zero.

For a normal cluster with extended L2 entries, subcluster x cannot be both
allocated (bitmap bit x) and zero (bit x + 32) (spec, "Extended L2
Entries").

QEMU: `qemu-img check` counts a corruption ("ERROR offset=...: Allocated
cluster has corrupted subcluster allocation bitmap"); guest I/O fails
("Invalid cluster entry found").
"""

import numpy as np

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "extl2-alloc-and-zero"
CODE = "Q0801"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag normal clusters whose bitmap has a bit set in both halves."""
    if not batch.extended:
        return
    bitmaps = batch.bitmaps
    hits = (batch.host_offsets != 0) & ~predicates.compressed(batch) & (((bitmaps >> u64(32)) & bitmaps) != 0)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, b: f"subcluster bitmap {b:#018x} marks subclusters {(b >> 32) & b:#x} both allocated and zero",
    )
