"""A compressed descriptor names more sectors than a cluster can need.

Compressed data never needs more than cluster_size + 511 bytes (the data of
one cluster, starting anywhere in a sector); a descriptor whose sector count
covers more than that is suspicious (spec, "Cluster mapping").

QEMU: not checked unless the range runs past the end of the file.
"""

import numpy as np

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits_at

NAME = "compressed-oversize"
CODE = "Q0905"
SEVERITY = "warning"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag compressed ranges longer than cluster_size + 511 bytes."""
    flat = predicates.compressed_entries(batch)
    _, csize = predicates.compressed_ranges(batch.entries.ravel()[flat], ctx.header.cluster_bits)
    big = csize > np.uint64(ctx.cluster_size + 511)
    size = dict(zip(flat[big].tolist(), csize[big].tolist()))
    yield from l2_hits_at(
        ctx,
        batch,
        flat[big],
        lambda i: (
            f"compressed L2 entry {int(batch.entries.ravel()[i]):#x} spans {size[i]} bytes, more than a "
            f"{ctx.cluster_size}-byte cluster can need"
        ),
    )
