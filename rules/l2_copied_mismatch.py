"""An active L2 entry's COPIED flag disagrees with its data cluster's refcount.

Bit 63 of an L2 entry for a normal or preallocated zero cluster must be set
exactly when the data cluster's refcount is 1 (spec, "Cluster mapping",
Standard Cluster Descriptor).  The stored refcount is used, as QEMU's
check_oflag_copied does; only tables of the active L1 are judged.  Images
with an external data file are judged by data-file-copied-missing.

QEMU: `qemu-img check` counts a corruption ("ERROR OFLAG_COPIED data
cluster: l2_entry=... refcount=..."); a wrong flag makes QEMU overwrite
data a snapshot still uses.  Repair: `qemu-img check -r all`.
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, stored_refcount

NAME = "l2-copied-mismatch"
CODE = "Q0707"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag allocated active entries whose COPIED flag contradicts the refcount."""
    if batch.data_file or ctx.stored_refcounts is None:
        return
    yield from l2_hits(
        ctx,
        batch,
        predicates.copied_mismatch_active(batch, ctx.stored_refcounts, ctx.header.cluster_bits),
        lambda e, _: (
            f"L2 entry {e:#x} has COPIED {'set' if e >> 63 else 'clear'} but its data cluster "
            f"at {e & spec.L2E_OFFSET_MASK:#x} has refcount {stored_refcount(ctx, e & spec.L2E_OFFSET_MASK)}"
        ),
        hints=lambda e: {"clusters": ((e & spec.L2E_OFFSET_MASK) >> ctx.header.cluster_bits,) * 2},
    )
