"""The bitmap directory offset is not cluster-aligned.

bitmap_directory_offset in the bitmaps extension must be cluster-aligned
(spec, "Bitmaps extension").

QEMU: refuses to open the image ("bitmaps_ext: invalid bitmap directory
offset").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import misaligned

NAME = "misaligned-bitmap-directory"
CODE = "Q1405"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("bitmaps_ext: invalid bitmap directory offset",)


def check(ext, ctx):
    """Flag a bitmaps extension whose directory offset is misaligned."""
    if ext.magic == spec.EXT_BITMAPS and misaligned(ext.payload.bitmap_directory_offset, ctx.cluster_size):
        yield Problem(
            ext.data_offset + spec.BITMAPS_EXT_FIELDS["bitmap_directory_offset"][0],
            f"{ext.path}.bitmap_directory_offset",
            f"bitmap directory offset {ext.payload.bitmap_directory_offset:#x} is not a multiple of the "
            f"cluster size {ctx.cluster_size:#x}",
        )
