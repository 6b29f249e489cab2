"""The bitmap directory lies past the end of the file.

The bitmap directory must be inside the image file (spec, "Bitmaps
extension").  As in QEMU's check, a directory that ends less than one
cluster past the end of the file is left to file-truncated, which reports any cut (QEMU reads zeros there).  Not
judged when the directory size is 0 or too large (bitmap-dir-size-zero,
bitmap-dir-too-large).

QEMU: reads zeros past the end of the file, so it finds an all-zero
directory entry and refuses to open the image ("Bitmap '' doesn't satisfy
the constraints"; tested with QEMU 7.2).  `qemu-img check` would count the
region as a corruption ("ERROR: counting reference for region exceeding
the end of the file by one cluster or more") but cannot open the image
either.  Repair: the file was cut short: fetch or copy it again; or clear
autoclear bit 0 in the header (byte 95, bit 0) and run `qemu-img check -r
leaks IMG`, which drops every bitmap.
"""

import attrs

from qcow2lint import spec
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem, ends_out_of_file, out_of_file_table

NAME = "bitmap-dir-out-of-file"
CODE = "Q1410"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(ext, ctx):
    """Flag a directory ending one cluster or more past the end of the file."""
    start = bitmaps_ext_field(ext, "bitmap_directory_offset")
    size = bitmaps_ext_field(ext, "bitmap_directory_size")
    if ext.payload is not ctx.image.bitmaps or start is None or size > spec.MAX_BITMAP_DIRECTORY_SIZE:
        return
    if ends_out_of_file(start, size, ctx):
        # wholly past the end, its offset is wrong: what is said of it follows,
        # and the directory it should be, which nothing names, leaks
        problem = bitmaps_ext_problem(
            ext,
            "bitmap_directory_offset",
            f"bitmap directory at {start:#x} ({size} bytes) ends {start + size - ctx.file_size} bytes past "
            f"the end of the file ({ctx.file_size} bytes)",
        )
        count = bitmaps_ext_field(ext, "nb_bitmaps") or 0
        yield attrs.evolve(problem, **out_of_file_table(start, size, count, "bitmaps", ctx))
