"""An L2 entry maps guest data to a host offset that is not cluster-aligned.

For a normal (allocated, uncompressed) cluster the host offset (bits 9-55)
must be cluster-aligned (spec, "Standard Cluster Descriptor"; catalogue
§2.7).  Zero clusters with a preallocated offset are judged by
misaligned-preallocated-cluster.

QEMU: `qemu-img check` counts a corruption ("ERROR offset=...: Data cluster
is not properly aligned; L2 entry corrupted."); guest I/O fails ("Cluster
allocation offset 0x... unaligned").
"""

import numpy as np

from qcow2lint import spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "misaligned-data-cluster"
CODE = "Q0702"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag normal L2 entries with a misaligned host offset."""
    candidates = np.flatnonzero(batch.host_offsets & u64(ctx.cluster_size - 1))
    hits = candidates[batch.cluster_types(candidates) == spec.CLUSTER_NORMAL]
    yield from l2_hits(
        ctx, batch, hits,
        lambda e, _: f"data cluster offset {e & spec.L2E_OFFSET_MASK:#x} (L2 entry {e:#x}) is not a "
        f"multiple of the cluster size {ctx.cluster_size:#x}",
    )  # fmt: skip
