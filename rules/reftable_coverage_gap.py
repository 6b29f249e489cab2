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
from qcow2lint.records import RefcountCheck

NAME = "reftable-coverage-gap"
CODE = "Q1110"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Flag refcount table slots that should name a block for used clusters but do not."""
    header = ctx.header
    per_block = ctx.cluster_size * 8 >> header.refcount_order
    computed = refcounts.computed[: refcounts.compared]
    blocks = -(-len(computed) // per_block)
    used = np.zeros(blocks * per_block, bool)
    used[: len(computed)] = computed != 0
    used_blocks = used.reshape(blocks, per_block).any(axis=1)
    reftable = ctx.image.refcount_table
    entries = np.zeros(blocks, np.uint64)
    known = min(blocks, len(reftable.entries))
    entries[:known] = reftable.entries[:known] & np.uint64(spec.REFT_OFFSET_MASK)
    for index in np.flatnonzero(used_blocks & (entries == 0)).tolist():
        count = int(np.count_nonzero(used[index * per_block : (index + 1) * per_block]))
        where = "past the end of the refcount table" if index >= reftable.expected_entries else "empty"
        yield Problem(
            reftable.file_offset + spec.REFTABLE_ENTRY_SIZE * index,
            f"reftable[{index}]",
            f"{count} clusters in use from cluster {index * per_block} have no refcount block: "
            f"refcount table entry {index} is {where}",
        )
