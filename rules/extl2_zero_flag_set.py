"""An extended L2 entry sets bit 0 of its descriptor.

With extended L2 entries, zero clusters are expressed in the subcluster
bitmap and bit 0 of the first word is reserved (spec, "Extended L2 Entries":
"always 0").

QEMU: ignores the bit; silent.  Repair: `qemu-img convert`.
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "extl2-zero-flag-set"
CODE = "Q0804"
SEVERITY = "warning"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag uncompressed extended entries with bit 0 set."""
    if not batch.extended:
        return
    hits = ((batch.entries & u64(spec.OFLAG_ZERO)) != 0) & ~predicates.compressed(batch)
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(hits),
        lambda e, _: f"extended L2 entry {e:#x} sets bit 0, which extended L2 reserves",
    )
