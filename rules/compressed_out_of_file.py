"""A compressed cluster's data runs past the end of the file.

The sectors a compressed descriptor names must lie inside the image file
(spec, "Cluster mapping").  As QEMU's check does, the data is out of the
file when it ends one cluster or more past the end.

QEMU: `qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more"); guest reads
fail with EIO.  Repair: the file was cut short: copy it again.
"""

import numpy as np

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits_at

NAME = "compressed-out-of-file"
CODE = "Q0904"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag compressed data that ends a cluster or more past the end of the file."""
    flat = predicates.compressed_entries(batch)
    coffset, csize = predicates.compressed_ranges(batch.entries.ravel()[flat], ctx.header.cluster_bits)
    outside = coffset + csize >= np.uint64(ctx.file_size + ctx.cluster_size)
    ranges = dict(zip(flat[outside].tolist(), zip(coffset[outside].tolist(), csize[outside].tolist())))
    yield from l2_hits_at(
        ctx,
        batch,
        flat[outside],
        lambda i: (
            f"compressed data at {ranges[i][0]:#x} ({ranges[i][1]} bytes) ends a cluster or more past "
            f"the end of the file ({ctx.file_size} bytes)"
        ),
    )
