"""An unallocated L2 entry has the COPIED flag set, without a data file.

Host offset 0 with COPIED means "host cluster 0 of the external data file";
without a data file (incompatible bit 2) the entry is just unallocated and
COPIED must be 0 (spec, "Cluster mapping", Standard Cluster Descriptor).

QEMU: treats the entry as unallocated; silent.  Repair: `qemu-img convert`.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "l2-offset0-copied-without-data-file"
CODE = "Q0709"
SEVERITY = "warning"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag entries with offset 0 and COPIED that are neither compressed nor zero."""
    if batch.data_file or not batch.may_have(spec.OFLAG_COPIED) or predicates.all_allocated(batch):
        return
    flags = spec.OFLAG_COPIED | spec.OFLAG_COMPRESSED | (0 if batch.extended else spec.OFLAG_ZERO)
    hits = ((batch.entries & u64(flags)) == u64(spec.OFLAG_COPIED)) & (batch.host_offsets == 0)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, _: f"L2 entry {e:#x} has host offset 0 and COPIED set, but the image has no external data file",
    )
