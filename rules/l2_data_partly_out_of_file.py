"""An L2 entry maps guest data to a cluster cut by the end of the file.

The host cluster starts inside the file but ends after it (catalogue §2.7),
as after an interrupted copy.

QEMU: tolerated (a reference less than one cluster past the end is not an
error for `qemu-img check`); the missing part reads as zeros.  Repair: the
file was cut short: copy it again.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "l2-data-partly-out-of-file"
CODE = "Q0706"
SEVERITY = "warning"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag data clusters that straddle the end of the file."""
    if batch.data_file or ctx.file_size % ctx.cluster_size == 0:
        return
    offsets = batch.host_offsets
    start = u64(ctx.file_size - ctx.file_size % ctx.cluster_size)
    hits = predicates.allocated(batch) & (offsets >= start) & (offsets < u64(ctx.file_size))
    yield from l2_hits(
        ctx, batch, np.flatnonzero(hits),
        lambda e, _: f"data cluster at {e & spec.L2E_OFFSET_MASK:#x} ends "
        f"{(e & spec.L2E_OFFSET_MASK) + ctx.cluster_size - ctx.file_size} bytes past the end of the file",
    )  # fmt: skip
