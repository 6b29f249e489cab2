"""A bitmap's table has no entries (bitmap_table_size is 0).

A bitmap covers the whole disk, so its table has at least one entry (spec,
"Bitmap directory").

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").  Repair: QEMU cannot open the image, so `qemu-img bitmap
--remove` fails too; clear autoclear bit 0 in the header (byte 95, bit 0)
and run `qemu-img check -r leaks IMG`: the read-write open drops every
bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem

NAME = "bitmap-table-size-zero"
CODE = "Q1425"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(entry, ctx):
    """Flag a bitmap whose table size is 0."""
    if entry.inside_directory and entry.bitmap_table_size == 0:
        yield bitmap_entry_problem(entry, "bitmap_table_size", "bitmap_table_size is 0; a bitmap table has entries")
