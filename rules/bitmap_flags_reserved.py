"""A bitmap directory entry sets reserved flag bits.

Bits 3-31 of a bitmap's flags are reserved and must be zero (spec, "Bitmap
directory": bit 0 in_use, bit 1 auto, bit 2 extra_data_compatible).  QEMU
also refuses bit 2; that is judged by bitmap-flag-extra-data-compatible.

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

NAME = "bitmap-flags-reserved"
CODE = "Q1419"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)
MASK = spec.BME_SPEC_RESERVED_FLAGS


def check(entry, ctx):
    """Flag reserved bits in a bitmap's flags."""
    if entry.flags & MASK:
        yield Problem(
            entry.field_offset("flags"),
            f"{entry.path}.flags",
            f"flags {entry.flags:#x} have reserved bits {entry.flags & MASK:#x} set (mask {MASK:#x})",
        )
