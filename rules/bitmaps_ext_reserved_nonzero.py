"""The reserved field of the bitmaps extension is not zero.

The 32-bit field after nb_bitmaps in the bitmaps extension is reserved and
must be zero (spec, "Bitmaps extension").

QEMU: refuses to open the image ("bitmaps_ext: Reserved field is not zero").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "bitmaps-ext-reserved-nonzero"
CODE = "Q1402"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("bitmaps_ext: Reserved field is not zero",)


def check(ext, ctx):
    """Flag a non-zero reserved32 in the bitmaps extension."""
    if ext.magic == spec.EXT_BITMAPS and ext.payload.reserved32:
        yield Problem(
            ext.data_offset + spec.BITMAPS_EXT_FIELDS["reserved32"][0],
            f"{ext.path}.reserved32",
            f"reserved field is {ext.payload.reserved32:#x}, must be 0",
        )
