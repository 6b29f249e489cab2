"""Two bitmaps have the same name.

Bitmap names must be unique within the image (spec, "Bitmap directory").
Every entry whose name an earlier entry already has is reported, at its
name.

QEMU: refuses to open the image ("Bitmap already exists: <name>"), unless
every later duplicate is in_use: those it skips silently, and keeps them
on disk when it rewrites the directory (tested), so the bitmap it uses may
not be the one the user expects.  Repair: `qemu-img bitmap --remove` fails
on an image QEMU refuses; clear autoclear bit 0 in the header (byte 95,
bit 0) and run `qemu-img check -r leaks IMG`: the read-write open drops
every bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Image
from qcow2lint.rulekit import shown

NAME = "bitmap-name-duplicate"
CODE = "Q1416"
SEVERITY = "error"
SCOPE = Image
QEMU_REFUSES = ("Bitmap already exists: NAME",)


def check(image, ctx):
    """Flag every bitmap whose name an earlier bitmap already has."""
    first = {}
    for entry in image.bitmap_directory:
        if not entry.inside_directory:
            continue
        earlier = first.setdefault(entry.name_bytes, entry)
        if earlier is not entry:
            skipped = " (it is in use, so QEMU skips it)" if entry.flags & spec.BME_FLAG_IN_USE else ""
            yield Problem(
                entry.name_offset,
                f"{entry.path}.name",
                f"bitmap name {shown(entry.name_bytes)} is already the name of {earlier.path}{skipped}",
            )
