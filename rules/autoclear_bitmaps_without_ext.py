"""Autoclear bit 0 (bitmaps) is set but there is no bitmaps extension.

Autoclear feature bit 0 says the bitmaps extension is consistent; setting it
without a bitmaps extension (0x23852875) "is an error" (spec, "Header",
autoclear_features).  v3 only: a v2 header has no autoclear field.  This
rule also reports what the retired overlap-zero-length-bitmap-dir (Q1202)
reported for the same bit; that name and code still select it.

QEMU: `qemu-img check` says "No errors", but QEMU 7.2 then takes the bitmap
directory to be the range (0, 0), which its overlap check treats as
covering everything: the first guest write is refused and the image is
marked corrupt ("Preventing invalid write on metadata (overlaps with
bitmap directory)").  Repair: clear autoclear bit 0 in the header by hand
(byte 95, bit 0): `qemu-img check -r all` and `qemu-img amend` keep it.
If a write already marked the image corrupt, `qemu-img check -r all IMG`
afterwards clears the corrupt bit.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "autoclear-bitmaps-without-ext"
CODE = "Q1411"
SEVERITY = "error"
SCOPE = Header
STRICTER_THAN_QEMU = (
    "The specification calls the bit without the extension an error, and QEMU 7.2 turns "
    "it into a failure at first use: it refuses the first guest write and marks the image "
    "corrupt. `qemu-img check` never looks at the bit."
)


def check(header, ctx):
    """Flag autoclear bit 0 in a v3 image without a bitmaps extension."""
    autoclear = header.autoclear_features
    if header.version < 3 or not autoclear & spec.AUTOCLEAR_BITMAPS:
        return
    if ctx.image.extension(spec.EXT_BITMAPS) is None:
        yield Problem(
            header.field_offset("autoclear_features"),
            "header.autoclear_features",
            f"autoclear_features {autoclear:#x} sets bit 0 (bitmaps) but the image has no bitmaps extension",
        )
