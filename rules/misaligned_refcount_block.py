"""A refcount table entry points at a refcount block that is not cluster-aligned.

The refcount block offset (bits 9-63 of a refcount table entry) must be
cluster-aligned (spec, "Host cluster management", refcount table entry).

QEMU: `qemu-img check` counts a corruption ("ERROR refcount block N is not
cluster aligned; refcount table entry corrupted") and then fails to get the
refcount of every cluster it covers; guest writes fail ("Refblock offset
0x... unaligned").  Repair: `qemu-img check -r all` rebuilds the refcounts.
"""

from qcow2lint import spec
from qcow2lint.records import RefcountTable
from qcow2lint.rulekit import entry_hits, u64

NAME = "misaligned-refcount-block"
CODE = "Q1102"
SEVERITY = "error"
SCOPE = RefcountTable


def check(table, ctx):
    """Flag refcount table entries whose block offset is misaligned."""
    offsets = table.entries & u64(spec.REFT_OFFSET_MASK)
    yield from entry_hits(
        ctx,
        table,
        (offsets & u64(ctx.cluster_size - 1)) != 0,
        lambda e: (
            f"refcount block offset {e & spec.REFT_OFFSET_MASK:#x} (entry {e:#x}) is not a multiple "
            f"of the cluster size {ctx.cluster_size:#x}"
        ),
    )
