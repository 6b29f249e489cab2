"""A bitmap's table offset is not cluster-aligned.

bitmap_table_offset in a bitmap directory entry must be cluster-aligned
(spec, "Bitmap directory").

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").
Repair: QEMU cannot open the image, so `qemu-img bitmap --remove` fails
too; clear autoclear bit 0 in the header (byte 95, bit 0) and run
`qemu-img check -r leaks IMG`: the read-write open drops every bitmap and
the check frees their clusters.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import misaligned, unusable_table

NAME = "misaligned-bitmap-table"
CODE = "Q1423"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(entry, ctx):
    """Flag a bitmap whose table offset is misaligned."""
    offset, size = entry.bitmap_table_offset, entry.bitmap_table_size
    if misaligned(offset, ctx.cluster_size):
        yield Problem(
            entry.file_offset,
            f"{entry.path}.bitmap_table_offset",
            f"bitmap table offset {offset:#x} is not a multiple of the cluster size {ctx.cluster_size:#x}",
            # The table read at the misaligned offset is garbage (its entries
            # and the data clusters they name); the data clusters of the table
            # at the aligned offset below, which nothing else names, leak.
            **unusable_table(offset, size * spec.BITMAP_TABLE_ENTRY_SIZE, "bitmap-table", ctx, size),
        )
