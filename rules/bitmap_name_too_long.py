"""A bitmap's name is longer than QEMU supports.

QEMU limits bitmap names to 1023 bytes (BME_MAX_NAME_SIZE).  The spec sets
no limit beyond the 16-bit name_size.

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").  Repair: QEMU cannot open the image, so `qemu-img bitmap
--remove` fails too; clear autoclear bit 0 in the header (byte 95, bit 0)
and run `qemu-img check -r leaks IMG`: the read-write open drops every
bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem

NAME = "bitmap-name-too-long"
CODE = "Q1415"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(entry, ctx):
    """Flag a bitmap name longer than 1023 bytes."""
    if entry.inside_directory and entry.name_size > spec.BME_MAX_NAME_SIZE:
        yield bitmap_entry_problem(
            entry,
            "name_size",
            f"bitmap name_size is {entry.name_size}; QEMU accepts at most {spec.BME_MAX_NAME_SIZE} bytes",
        )
