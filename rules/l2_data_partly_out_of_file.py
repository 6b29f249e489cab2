"""An L2 entry maps guest data to a cluster cut by the end of the file.

The host cluster starts inside the file but its data ends after it (spec,
"Cluster mapping"), as after an interrupted copy.  With extended L2 entries
only the allocated subclusters hold data (QEMU extends the file by the
subclusters it writes), so the cluster is cut only when an allocated
subcluster ends past the end of the file.

QEMU: tolerated (a reference less than one cluster past the end is not an
error for `qemu-img check`); the missing part reads as zeros.  Repair: the
file was cut short: copy it again.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits_at, u64

NAME = "l2-data-partly-out-of-file"
CODE = "Q0706"
SEVERITY = "warning"
SCOPE = L2Tables


def _data_end(offset: int, bitmap: int, cluster_size: int, extended: bool) -> int:
    """Where the cluster's data ends: its last allocated subcluster with extended L2."""
    if not extended:
        return offset + cluster_size
    allocated = bitmap & spec.SUBCLUSTER_ALLOC_MASK
    return offset + allocated.bit_length() * (cluster_size // spec.SUBCLUSTERS_PER_CLUSTER)


def check(batch, ctx):
    """Flag data clusters whose data straddles the end of the file."""
    if batch.data_file or ctx.file_size % ctx.cluster_size == 0:
        return
    start = u64(ctx.file_size - ctx.file_size % ctx.cluster_size)
    if batch.max_host_offset < start:
        return
    offsets = batch.host_offsets.ravel()
    flat = np.flatnonzero(
        predicates.allocated(batch) & (batch.host_offsets >= start) & (batch.host_offsets < u64(ctx.file_size))
    )
    bitmaps = batch.bitmaps.ravel() if batch.extended else np.zeros(len(offsets), np.uint64)
    ends = {i: _data_end(int(offsets[i]), int(bitmaps[i]), ctx.cluster_size, batch.extended) for i in flat.tolist()}
    cut = np.array([i for i, end in ends.items() if end > ctx.file_size], np.int64)
    yield from l2_hits_at(
        ctx,
        batch,
        cut,
        lambda i: f"data cluster at {int(offsets[i]):#x} ends {ends[i] - ctx.file_size} bytes past the end of the file",
    )
