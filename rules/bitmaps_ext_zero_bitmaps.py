"""The bitmaps extension says the image has no bitmaps.

nb_bitmaps in the bitmaps extension must be at least 1; an image without
bitmaps has no bitmaps extension at all (spec, "Bitmaps extension").

QEMU: refuses to open the image ("found bitmaps extension with zero
bitmaps") when autoclear bit 0 is set; without it QEMU ignores the
extension.  Repair: clear autoclear bit 0 in the header (byte 95, bit 0),
then `qemu-img check -r leaks IMG`: the read-write open drops the extension
and the check frees the clusters it pointed to.
"""

from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem

NAME = "bitmaps-ext-zero-bitmaps"
CODE = "Q1403"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("found bitmaps extension with zero bitmaps",)


def check(ext, ctx):
    """Flag a bitmaps extension with nb_bitmaps 0."""
    if bitmaps_ext_field(ext, "nb_bitmaps") == 0:
        yield bitmaps_ext_problem(
            ext, "nb_bitmaps", "nb_bitmaps is 0; a bitmaps extension must describe at least one bitmap"
        )
