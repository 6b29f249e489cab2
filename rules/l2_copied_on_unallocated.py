"""A plain zero cluster has the COPIED flag set.

COPIED (bit 63) means "refcount is exactly 1" and must be 0 for clusters
that own no host cluster (spec, "Cluster mapping", Standard Cluster
Descriptor).  This rule judges zero clusters without a host offset (QEMU's
ZERO_PLAIN); unallocated entries with COPIED are reported by
l2-offset0-copied-without-data-file.

QEMU: silent.  Repair: `qemu-img convert` writes clean entries.
"""

import numpy as np

from qcow2lint import spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "l2-copied-on-unallocated"
CODE = "Q0708"
SEVERITY = "warning"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag ZERO_PLAIN entries with COPIED set (no data file)."""
    if batch.data_file or batch.extended or not batch.may_have(spec.OFLAG_ZERO):
        return
    flags = u64(spec.OFLAG_COPIED | spec.OFLAG_COMPRESSED | spec.OFLAG_ZERO)
    hits = ((batch.entries & flags) == u64(spec.OFLAG_COPIED | spec.OFLAG_ZERO)) & (batch.host_offsets == 0)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, _: f"L2 entry {e:#x} is a zero cluster without a host cluster but sets COPIED (bit 63)",
    )
