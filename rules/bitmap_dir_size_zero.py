"""The bitmap directory size is zero.

A bitmaps extension describes at least one bitmap, so its directory cannot
be empty (spec, "Bitmaps extension").

QEMU: refuses to open the image ("Requested bitmap directory size is
zero") when autoclear bit 0 is set.  Repair: clear autoclear bit 0 in the
header (byte 95, bit 0), then `qemu-img check -r leaks IMG` drops the
extension and frees its clusters.
"""

from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem

NAME = "bitmap-dir-size-zero"
CODE = "Q1407"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("Requested bitmap directory size is zero",)


def check(ext, ctx):
    """Flag a bitmap_directory_size of 0."""
    if bitmaps_ext_field(ext, "bitmap_directory_size") == 0:
        yield bitmaps_ext_problem(
            ext,
            "bitmap_directory_size",
            f"bitmap_directory_size is 0, but nb_bitmaps is {ext.payload.nb_bitmaps}",
        )
