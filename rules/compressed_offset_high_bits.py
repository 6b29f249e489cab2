"""A compressed descriptor sets host offset bits at or above bit 56.

With clusters of 16 KiB or less the offset field of a compressed descriptor
is wider than 56 bits, and the bits from 56 up must be 0 (spec, "Cluster
mapping": host offsets are at most 2^56).

QEMU: not checked directly; the offset lands far past the end of the file,
so `qemu-img check` reports the cluster as out of file and reads fail.
"""

import numpy as np

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits_at

NAME = "compressed-offset-high-bits"
CODE = "Q0903"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag compressed offsets of 2^56 or more."""
    flat = predicates.compressed_entries(batch)
    coffset, _ = predicates.compressed_ranges(batch.entries.ravel()[flat], ctx.header.cluster_bits)
    high = (coffset >> np.uint64(56)) != 0
    offset = dict(zip(flat[high].tolist(), coffset[high].tolist()))
    yield from l2_hits_at(
        ctx,
        batch,
        flat[high],
        lambda i: (
            f"compressed L2 entry {int(batch.entries.ravel()[i]):#x} has host offset {offset[i]:#x}, at or above 2^56"
        ),
        root=True,  # the payload out of the file follows
    )
