"""A refcount table entry points at a refcount block past the end of the file.

Every refcount block must lie inside the image file (spec, "Host cluster
management").

QEMU: `qemu-img check` counts a corruption ("ERROR refcount block N is
outside image"); refcounts read from it are zeros.  Repair:
`qemu-img check -r all` grows the file and rebuilds the block.
"""

from qcow2lint import spec
from qcow2lint.records import RefcountTable
from qcow2lint.rulekit import entry_hits, u64

NAME = "refblock-out-of-file"
CODE = "Q1103"
SEVERITY = "error"
SCOPE = RefcountTable


def check(table, ctx):
    """Flag usable refcount table entries whose block starts past the last cluster of the file."""
    entries = table.entries
    offsets = entries & u64(spec.REFT_OFFSET_MASK)
    usable = ((entries & u64(spec.REFT_RESERVED_MASK)) == 0) & ((offsets & u64(ctx.cluster_size - 1)) == 0)
    clusters = -(-ctx.file_size // ctx.cluster_size)
    yield from entry_hits(
        ctx,
        table,
        usable & (offsets >= u64(clusters * ctx.cluster_size)),
        lambda e: (
            f"refcount block at {e & spec.REFT_OFFSET_MASK:#x} lies past the end of the file ({ctx.file_size} bytes)"
        ),
    )
