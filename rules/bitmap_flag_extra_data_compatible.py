"""A bitmap sets flag bit 2 (extra_data_compatible), which QEMU refuses.

The spec defines flag bit 2, extra_data_compatible: with unknown extra data,
the bitmap may still be used.  QEMU treats the bit as reserved
(BME_RESERVED_FLAGS = 0xfffffffc).  Bits 3-31 are judged by
bitmap-flags-reserved.

Option `reading`: "qemu" (default) flags the bit, as QEMU refuses such an
image; "spec" accepts it, and the rule then reports nothing.

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints"; tested).  Repair: QEMU cannot open the image, so `qemu-img
bitmap --remove` fails too; clear autoclear bit 0 in the header (byte 95,
bit 0) and run `qemu-img check -r leaks IMG`: the read-write open drops
every bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem, option_choice

NAME = "bitmap-flag-extra-data-compatible"
CODE = "Q1420"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)
OPTIONS = {"reading": "qemu"}
OPTION_CONSTRAINTS = {"reading": {"choices": ("qemu", "spec")}}


def check(entry, ctx):
    """Flag flag bit 2 under QEMU's reading."""
    reading = option_choice(ctx, "reading", OPTION_CONSTRAINTS["reading"]["choices"])
    if reading == "qemu" and entry.inside_directory and entry.flags & spec.BME_FLAG_EXTRA_DATA_COMPATIBLE:
        yield bitmap_entry_problem(
            entry,
            "flags",
            f"flags {entry.flags:#x} set bit 2 (extra_data_compatible), which QEMU treats as reserved "
            f"(mask {spec.BME_QEMU_RESERVED_FLAGS:#x})",
        )
