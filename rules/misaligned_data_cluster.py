"""An L2 entry maps guest data to a host offset that is not cluster-aligned.

For a normal (allocated, uncompressed) cluster the host offset (bits 9-55)
must be cluster-aligned (spec, "Standard Cluster Descriptor"; catalogue
§2.7).  Zero clusters with a preallocated offset are judged by
misaligned-preallocated-cluster.

QEMU: `qemu-img check` counts a corruption ("ERROR offset=...: Data cluster
is not properly aligned; L2 entry corrupted."); guest I/O fails ("Cluster
allocation offset 0x... unaligned").
"""

from qcow2lint import spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "misaligned-data-cluster"
CODE = "Q0702"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag normal L2 entries with a misaligned host offset."""
    entries = batch.entries
    offsets = entries & u64(spec.L2E_OFFSET_MASK)
    normal = (entries & u64(spec.OFLAG_COMPRESSED)) == 0
    if batch.bitmaps is None:  # with extended L2 the zero flag is ignored
        normal &= (entries & u64(spec.OFLAG_ZERO)) == 0
    yield from l2_hits(
        ctx, batch, normal & ((offsets & u64(ctx.cluster_size - 1)) != 0),
        lambda e, _: f"data cluster offset {e & spec.L2E_OFFSET_MASK:#x} (L2 entry {e:#x}) is not a "
        f"multiple of the cluster size {ctx.cluster_size:#x}",
    )  # fmt: skip
