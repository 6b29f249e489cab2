"""An L2 entry maps guest data to a cluster past the end of the file.

The host cluster of a normal or preallocated zero cluster must lie inside
the image file (spec, "Cluster mapping").  As QEMU's check does, a cluster
is out of the file when it ends one cluster or more past the end; a cluster
cut by the end of the file is l2-data-partly-out-of-file.

QEMU: `qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more"); guest reads
return zeros instead of the data.  Repair: the file was cut short: copy it
again.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "l2-data-out-of-file"
CODE = "Q0705"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag data clusters that start at or past the end of the file."""
    if batch.data_file or batch.max_host_offset < ctx.file_size:
        return
    hits = predicates.allocated(batch) & (batch.host_offsets >= u64(ctx.file_size))
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, _: (
            f"data cluster at {e & spec.L2E_OFFSET_MASK:#x} lies past the end of the file ({ctx.file_size} bytes)"
        ),
    )
