"""An active L1 entry's COPIED flag disagrees with its L2 table's refcount.

Bit 63 of an active L1 entry (COPIED) must be set exactly when the L2
table's refcount is 1, i.e. when the table may be written in place (spec,
"Cluster mapping", L1 table entry).  The stored refcount is used, as QEMU's
check_oflag_copied does.

QEMU: `qemu-img check` counts a corruption ("ERROR OFLAG_COPIED L2 cluster:
l1_index=... l1_entry=... refcount=..."); a wrong COPIED flag makes QEMU
write into a table shared with a snapshot, or copy one it owns.  Repair:
`qemu-img check -r all` (or `-r leaks` when nothing else is wrong).
"""

import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.records import L1Table
from qcow2lint.rulekit import entry_hits_at, stored_refcount

NAME = "l1-copied-mismatch"
CODE = "Q0604"
SEVERITY = "error"
SCOPE = L1Table


def check(table, ctx):
    """Flag active L1 entries whose COPIED flag contradicts the refcount."""
    stored = ctx.stored_refcounts
    if not table.active or stored is None:
        return
    clusters = (table.entries & np.uint64(spec.L1E_OFFSET_MASK)) >> np.uint64(ctx.header.cluster_bits)
    counts, readable = stored.of(clusters)
    yield from entry_hits_at(
        ctx,
        table,
        predicates.copied_mismatch_l1(table, counts, readable),
        lambda e: (
            f"L1 entry {e:#x} has COPIED {'set' if e >> 63 else 'clear'} but its L2 table "
            f"at {e & spec.L1E_OFFSET_MASK:#x} has refcount {stored_refcount(ctx, e & spec.L1E_OFFSET_MASK)}"
        ),
        hints=lambda e: {
            "about": e & spec.L1E_OFFSET_MASK,
            "clusters": ((e & spec.L1E_OFFSET_MASK) >> ctx.header.cluster_bits,) * 2,
        },
    )
