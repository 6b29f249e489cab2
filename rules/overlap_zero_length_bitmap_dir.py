"""autoclear bit 0 is set but there is no bitmaps extension.

With autoclear bit 0 ("bitmaps extension consistent") set and no bitmaps
extension, QEMU 7.2 takes the bitmap directory to be the range (0, 0), which
its overlap check treats as covering everything (the same condition as
autoclear-bitmaps-without-ext, seen from what QEMU does at write time).

QEMU: `qemu-img check` says "No errors", but the first guest write is
refused and the image marked corrupt ("Preventing invalid write on metadata
(overlaps with bitmap directory)").  Repair: clear the bit with a tool
that rewrites the header, e.g. `qemu-img convert`.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "overlap-zero-length-bitmap-dir"
CODE = "Q1202"
SEVERITY = "error"
SCOPE = Header


def check(header, ctx):
    """Flag autoclear bit 0 without a bitmaps extension."""
    if header.autoclear_features & spec.AUTOCLEAR_BITMAPS and ctx.image.bitmaps is None:
        yield Problem(
            header.field_offset("autoclear_features"),
            "header.autoclear_features",
            "autoclear bit 0 is set without a bitmaps extension: QEMU's overlap check sees a bitmap "
            "directory covering the whole image and refuses every guest write",
        )
