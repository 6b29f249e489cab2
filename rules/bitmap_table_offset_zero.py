"""A bitmap has no bitmap table (bitmap_table_offset is 0).

Every bitmap has a bitmap table, and offset 0 is the image header (spec,
"Bitmap directory").

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").  Repair: QEMU cannot open the image, so `qemu-img bitmap
--remove` fails too; clear autoclear bit 0 in the header (byte 95, bit 0)
and run `qemu-img check -r leaks IMG`: the read-write open drops every
bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem

NAME = "bitmap-table-offset-zero"
CODE = "Q1424"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(entry, ctx):
    """Flag a bitmap whose table offset is 0."""
    if entry.inside_directory and entry.bitmap_table_offset == 0:
        yield bitmap_entry_problem(
            entry, "bitmap_table_offset", "bitmap_table_offset is 0, which is the image header, not a bitmap table"
        )
