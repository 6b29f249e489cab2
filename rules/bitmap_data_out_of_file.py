"""A bitmap table entry points at a data cluster past the end of the file.

The data cluster a serialized bitmap table entry points to must be inside
the image file (spec, "Bitmap table").  As in QEMU's check, a cluster that
starts inside the file and is cut short by its end is tolerated.  A table
larger than QEMU's limits is not judged: its entries are mostly whatever
follows the table in the file (bitmap-table-size-too-large).

QEMU: reads zeros for the missing cluster, so it opens the image, but
`qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more").  Repair:
the file was cut short: fetch or copy it again; or remove the bitmap with
`qemu-img bitmap --remove IMG NAME`, then free the cluster that leaves
leaked with `qemu-img check -r leaks IMG` (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapTable
from qcow2lint.rulekit import bitmap_of, entry_hits, u64

NAME = "bitmap-data-out-of-file"
CODE = "Q1432"
SEVERITY = "error"
SCOPE = BitmapTable


def check(table, ctx):
    """Flag data offsets at or past the end of the file."""
    entry = bitmap_of(ctx, table)
    size = entry.bitmap_table_size
    if not entry.inside_directory or entry.bitmap_table_offset == 0:
        return
    if size > spec.BME_MAX_TABLE_SIZE or size * ctx.cluster_size > spec.BME_MAX_PHYS_SIZE:
        return
    offsets = table.entries & u64(spec.BME_TABLE_ENTRY_OFFSET_MASK)
    # A cluster at or past EOF ends a whole cluster or more past it.
    yield from entry_hits(
        ctx,
        table,
        offsets >= u64(max(ctx.file_size, 1)),
        lambda e: (
            f"bitmap data cluster {e & spec.BME_TABLE_ENTRY_OFFSET_MASK:#x} (entry {e:#x}) lies past the "
            f"end of the file ({ctx.file_size} bytes)"
        ),
    )
