"""A bitmap's granularity is outside the range QEMU (or the spec) allows.

granularity_bits gives the bytes per bit as a power of two.  The spec allows
0-63; QEMU accepts only 9-31 (BME_MIN_GRANULARITY_BITS ..
BME_MAX_GRANULARITY_BITS, 512 bytes to 2 GiB).

Option `reading`: "qemu" (default) flags values outside 9..31, the images
QEMU refuses; "spec" flags only values outside 0..63.

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").  Repair: QEMU cannot open the image, so `qemu-img bitmap
--remove` fails too; clear autoclear bit 0 in the header (byte 95, bit 0)
and run `qemu-img check -r leaks IMG`: the read-write open drops every
bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem, option_choice

NAME = "bitmap-granularity-range"
CODE = "Q1418"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)
OPTIONS = {"reading": "qemu"}
OPTION_CONSTRAINTS = {"reading": {"choices": ("qemu", "spec")}}
RANGES = {"qemu": (spec.BME_MIN_GRANULARITY_BITS, spec.BME_MAX_GRANULARITY_BITS), "spec": (0, 63)}


def check(entry, ctx):
    """Flag granularity_bits outside the range of the chosen reading."""
    reading = option_choice(ctx, "reading", OPTION_CONSTRAINTS["reading"]["choices"])
    low, high = RANGES[reading]
    if entry.inside_directory and not low <= entry.granularity_bits <= high:
        who = "QEMU accepts" if reading == "qemu" else "the spec allows"
        yield bitmap_entry_problem(
            entry, "granularity_bits", f"bitmap granularity_bits is {entry.granularity_bits}; {who} {low}..{high}"
        )
