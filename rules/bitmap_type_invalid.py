"""A bitmap has a type other than 1 (dirty tracking).

The type byte of a bitmap directory entry must be 1, dirty tracking bitmap;
0 and 2-255 are reserved (spec, "Bitmap directory").

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").  Repair: QEMU cannot open the image, so `qemu-img bitmap
--remove` fails too; clear autoclear bit 0 in the header (byte 95, bit 0)
and run `qemu-img check -r leaks IMG`: the read-write open drops every
bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem

NAME = "bitmap-type-invalid"
CODE = "Q1417"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(entry, ctx):
    """Flag a bitmap whose type is not 1."""
    if entry.inside_directory and entry.type != spec.BITMAP_TYPE_DIRTY_TRACKING:
        yield bitmap_entry_problem(
            entry,
            "type",
            f"bitmap type is {entry.type}; only {spec.BITMAP_TYPE_DIRTY_TRACKING} (dirty tracking) is defined",
        )
