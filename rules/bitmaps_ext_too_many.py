"""The bitmaps extension claims more bitmaps than QEMU supports.

QEMU supports at most 65535 bitmaps per image (QCOW2_MAX_BITMAPS).  The spec
sets no limit, but no QEMU-written image exceeds it.

QEMU: refuses to open the image ("bitmaps_ext: Image has N bitmaps,
exceeding the QEMU supported maximum of 65535") when autoclear bit 0 is
set.  Repair: clear autoclear bit 0 in the header (byte 95, bit 0), then
`qemu-img check -r leaks IMG` drops the extension and frees its clusters.
"""

from qcow2lint import spec
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem

NAME = "bitmaps-ext-too-many"
CODE = "Q1404"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("bitmaps_ext: Image has N bitmaps, exceeding the QEMU supported maximum of 65535",)


def check(ext, ctx):
    """Flag nb_bitmaps above 65535."""
    count = bitmaps_ext_field(ext, "nb_bitmaps")
    if count is not None and count > spec.MAX_BITMAPS:
        yield bitmaps_ext_problem(
            ext, "nb_bitmaps", f"nb_bitmaps is {count}; QEMU supports at most {spec.MAX_BITMAPS} bitmaps"
        )
