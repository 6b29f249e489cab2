"""An extended L2 entry owns a host cluster but no subcluster is allocated.

A host offset with an all-zero subcluster bitmap is legal (QEMU's
UNALLOCATED_ALLOC, e.g. after preallocation): the cluster is reserved but
reads from the backing file (spec, "Extended L2 Entries").  Reported for
information.

Off by default (a legal layout: `qemu-img create -o
extended_l2=on,preallocation=metadata` writes it); the `pedantic` preset
enables it.

QEMU: legal; silent.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits

NAME = "extl2-allocated-empty-bitmap"
CODE = "Q0805"
SEVERITY = "info"
SCOPE = L2Tables
DEFAULT_ENABLED = False


def check(batch, ctx):
    """Note clusters with a host offset and an empty bitmap."""
    if not batch.extended:
        return
    hits = (batch.host_offsets != 0) & ~predicates.compressed(batch) & (batch.bitmaps == 0)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, _: f"host cluster {e & spec.L2E_OFFSET_MASK:#x} is reserved but no subcluster is allocated",
    )
