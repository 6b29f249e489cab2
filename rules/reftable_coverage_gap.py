"""Clusters in use are not covered by any refcount block.

Every cluster in use needs a refcount: its refcount table index must be
inside the table and name a refcount block (spec, "Host cluster management",
refcount table).  Without one its refcount reads as 0.

QEMU: `qemu-img check` reports each such cluster ("ERROR cluster N
refcount=0 reference=M"); QEMU may reuse the clusters and overwrite data.
Repair: `qemu-img check -r all` rebuilds the refcount structures.
"""

import numpy as np

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.results import RefcountCheck

NAME = "reftable-coverage-gap"
CODE = "Q1110"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Flag refcount table slots that should name a block for used clusters but do not."""
    header = ctx.header
    per_block = ctx.cluster_size * 8 >> header.refcount_order
    used = clusters_in_use(refcounts.computed[: refcounts.compared], per_block)
    reftable = ctx.image.refcount_table
    entries = np.zeros(len(used), np.uint64)
    known = min(len(used), len(reftable.entries))
    entries[:known] = reftable.entries[:known] & np.uint64(spec.REFT_OFFSET_MASK)
    for index in np.flatnonzero((used != 0) & (entries == 0)).tolist():
        count = int(used[index])
        where = "past the end of the refcount table" if index >= reftable.expected_entries else "empty"
        yield Problem(
            reftable.file_offset + spec.REFTABLE_ENTRY_SIZE * index,
            f"reftable[{index}]",
            f"{count} clusters in use from cluster {index * per_block} have no refcount block: "
            f"refcount table entry {index} is {where}",
            # every refcount of the range reads as 0
            explains=(index * per_block, (index + 1) * per_block - 1),
        )


def clusters_in_use(computed, per_block):
    """How many clusters each refcount block's range has in use (a non-zero
    count), counted a few blocks at a time (no full-size temporary)."""
    used = np.zeros(-(-len(computed) // per_block), np.int64)
    step = max(1, (1 << 20) // per_block) * per_block
    for start in range(0, len(computed), step):
        part = computed[start : start + step]
        whole = len(part) // per_block * per_block
        first = start // per_block
        used[first : first + whole // per_block] = np.count_nonzero(part[:whole].reshape(-1, per_block), axis=1)
        if whole < len(part):
            used[first + whole // per_block] = np.count_nonzero(part[whole:])
    return used
