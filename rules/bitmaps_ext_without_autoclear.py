"""A v3 image has a bitmaps extension but autoclear bit 0 is clear.

Autoclear bit 0 says the bitmaps extension is consistent.  A program that
does not know about bitmaps clears the bit when it writes the image, so a
clear bit means every bitmap may be stale (spec, "Header",
autoclear_features and "Bitmaps extension").  v2 images are judged by
bitmaps-in-v2.

QEMU: ignores the bitmaps and warns ("a program lacking bitmap support
modified this file, so all bitmaps are now considered inconsistent" /
"Some clusters may be leaked, run 'qemu-img check -r' on the image file to
fix."); the next read-write open drops the extension, and `qemu-img check`
counts the bitmap clusters as leaked.  Repair: `qemu-img check -r leaks
IMG` drops the extension and frees the clusters; recreate the bitmaps with
`qemu-img bitmap --add`.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "bitmaps-ext-without-autoclear"
CODE = "Q1412"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag a bitmaps extension in a v3 image with autoclear bit 0 clear."""
    autoclear = header.autoclear_features
    ext = ctx.image.extension(spec.EXT_BITMAPS)
    if header.version >= 3 and ext is not None and not autoclear & spec.AUTOCLEAR_BITMAPS:
        yield Problem(
            header.field_offset("autoclear_features"),
            "header.autoclear_features",
            f"autoclear_features {autoclear:#x} has bit 0 (bitmaps) clear, but {ext.path} is a bitmaps "
            f"extension: all its bitmaps are to be considered inconsistent",
        )
