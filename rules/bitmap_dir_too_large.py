"""The bitmap directory is larger than QEMU supports.

QEMU limits bitmap_directory_size to 1024 * 65535 = 67107840 bytes
(QCOW2_MAX_BITMAP_DIRECTORY_SIZE): 65535 entries of at most 1024 bytes each.

QEMU: refuses to open the image ("bitmaps_ext: bitmap directory size (N)
exceeds the maximum supported size (67107840)") when autoclear bit 0 is
set.  Repair: clear autoclear bit 0 in the header (byte 95, bit 0), then
`qemu-img check -r leaks IMG` drops the extension and frees its clusters.
"""

from qcow2lint import spec
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem

NAME = "bitmap-dir-too-large"
CODE = "Q1406"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("bitmaps_ext: bitmap directory size (N) exceeds the maximum supported size (67107840)",)


def check(ext, ctx):
    """Flag a bitmap_directory_size above 67107840."""
    size = bitmaps_ext_field(ext, "bitmap_directory_size")
    if size is not None and size > spec.MAX_BITMAP_DIRECTORY_SIZE:
        yield bitmaps_ext_problem(
            ext,
            "bitmap_directory_size",
            f"bitmap_directory_size is {size} bytes; QEMU supports at most {spec.MAX_BITMAP_DIRECTORY_SIZE} "
            f"(1024 * {spec.MAX_BITMAPS})",
        )
