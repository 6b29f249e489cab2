"""The bitmaps extension's length is not 24 bytes.

The bitmaps extension (0x23852875) holds exactly 24 bytes: nb_bitmaps,
reserved32, bitmap_directory_size and bitmap_directory_offset (spec,
"Bitmaps extension").  Fields that a shorter extension does not hold are not
judged by the other bitmaps rules.  A length that runs past the end of
the extension area is ext-overruns-area's finding (QEMU refuses that
first), not this rule's.

QEMU: refuses to open the image ("bitmaps_ext: Invalid extension length"),
even when autoclear bit 0 is clear and the bitmaps would be ignored.
Repair: none with QEMU's tools, which cannot open the image; rewrite the
length with a hex editor if the 24 bytes are intact, then clear autoclear
bit 0 and run `qemu-img check -r leaks` to drop the bitmaps (see
bitmap-type-invalid).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "bitmaps-ext-bad-length"
CODE = "Q1401"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("bitmaps_ext: Invalid extension length",)


def check(ext, ctx):
    """Flag a bitmaps extension whose length is not 24."""
    if ext.magic == spec.EXT_BITMAPS and ext.length != spec.BITMAPS_EXT_SIZE and not ext.overruns_area:
        yield Problem(
            ext.field_offset("length"),
            f"{ext.path}.length",
            f"bitmaps extension length is {ext.length}; it must be exactly {spec.BITMAPS_EXT_SIZE}",
        )
