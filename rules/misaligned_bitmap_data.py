"""A bitmap table entry points at bitmap data that is not cluster-aligned.

The data cluster offset (bits 9-55) of a bitmap table entry must be
cluster-aligned (spec, "Bitmap table").

QEMU: refuses to open the image ("Could not read bitmap_table table from
image for bitmap '<name>': Invalid argument").
Repair: QEMU cannot open the image, so `qemu-img bitmap --remove` fails
too; clear autoclear bit 0 in the header (byte 95, bit 0) and run
`qemu-img check -r leaks IMG`: the read-write open drops every bitmap and
the check frees their clusters.
"""

from qcow2lint import spec
from qcow2lint.records import BitmapTable
from qcow2lint.rulekit import entry_hits, u64

NAME = "misaligned-bitmap-data"
CODE = "Q1431"
SEVERITY = "error"
SCOPE = BitmapTable
QEMU_REFUSES = ("Could not read bitmap_table table from image for bitmap 'NAME': Invalid argument",)


def check(table, ctx):
    """Flag bitmap table entries with a misaligned data offset."""
    offsets = table.entries & u64(spec.BME_TABLE_ENTRY_OFFSET_MASK)
    yield from entry_hits(
        ctx,
        table,
        (offsets & u64(ctx.cluster_size - 1)) != 0,
        lambda e: (
            f"bitmap data offset {e & spec.BME_TABLE_ENTRY_OFFSET_MASK:#x} (entry {e:#x}) is not a "
            f"multiple of the cluster size {ctx.cluster_size:#x}"
        ),
    )
