"""A bitmap table lies past the end of the file.

Every bitmap table must be inside the image file (spec, "Bitmap directory").
As in QEMU's check, a table that ends less than one cluster past the end of
the file is left to file-truncated, which reports any cut (QEMU reads zeros
there).

QEMU: reads zeros for the missing part, so it opens the image, but
`qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more").  Repair:
the file was cut short: fetch or copy it again; or remove the bitmap with
`qemu-img bitmap --remove IMG NAME`, then free the cluster that leaves
leaked with `qemu-img check -r leaks IMG` (tested with QEMU 7.2).
"""

import attrs

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem, ends_out_of_file, out_of_file_table

NAME = "bitmap-table-out-of-file"
CODE = "Q1428"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry


def check(entry, ctx):
    """Flag a bitmap table ending one cluster or more past the end of the file."""
    offset, length = entry.bitmap_table_offset, entry.bitmap_table_size * spec.BITMAP_TABLE_ENTRY_SIZE
    if entry.inside_directory and offset != 0 and ends_out_of_file(offset, length, ctx):
        # wholly past the end, its offset is wrong: what is said of it follows,
        # and the table it should be, which nothing names, leaks
        problem = bitmap_entry_problem(
            entry,
            "bitmap_table_offset",
            f"bitmap table at {offset:#x} ({length} bytes) ends {offset + length - ctx.file_size} bytes past "
            f"the end of the file ({ctx.file_size} bytes)",
        )
        yield attrs.evolve(problem, **out_of_file_table(offset, length, entry.bitmap_table_size, "bitmap-table", ctx))
