"""The padding after a bitmap directory entry's name is not zero.

Each bitmap directory entry is padded to a multiple of 8 bytes, and the
padding must be zero (spec, "Bitmap directory").

QEMU: silent.  Repair: recreate the bitmap, or convert the image with
`qemu-img convert --bitmaps`.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import BitmapDirectoryEntry

NAME = "bitmap-dir-padding-nonzero"
CODE = "Q1422"
SEVERITY = "warning"
SCOPE = BitmapDirectoryEntry


def check(entry, ctx):
    """Flag non-zero padding bytes after a bitmap's name."""
    if any(entry.padding):
        yield Problem(
            entry.padding_offset,
            f"{entry.path}.padding",
            f"padding after the name must be zero, found {entry.padding.hex(' ')}",
        )
