"""The bitmap directory offset is not cluster-aligned.

bitmap_directory_offset in the bitmaps extension must be cluster-aligned
(spec, "Bitmaps extension").

QEMU: refuses to open the image ("bitmaps_ext: invalid bitmap directory
offset").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import misaligned, unusable_table

NAME = "misaligned-bitmap-directory"
CODE = "Q1405"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("bitmaps_ext: invalid bitmap directory offset",)


def check(ext, ctx):
    """Flag a bitmaps extension whose directory offset is misaligned."""
    if ext.magic != spec.EXT_BITMAPS:
        return
    payload = ext.payload
    offset = payload.bitmap_directory_offset
    if misaligned(offset, ctx.cluster_size):
        # The directory read at the misaligned offset, as far as the reader
        # walked it: its garbage entries, and what is said of it, follow.
        end = offset + min(payload.bitmap_directory_size, spec.MAX_BITMAP_DIRECTORY_SIZE)
        entries = ctx.image.bitmap_directory if payload is ctx.image.bitmaps else ()
        if entries:
            end = max(end, entries[-1].file_offset + entries[-1].size)
        hints = unusable_table(offset, end - offset, "bitmaps", ctx, payload.nb_bitmaps)
        yield Problem(
            ext.data_offset + spec.BITMAPS_EXT_FIELDS["bitmap_directory_offset"][0],
            f"{ext.path}.bitmap_directory_offset",
            f"bitmap directory offset {offset:#x} is not a multiple of the cluster size {ctx.cluster_size:#x}",
            # the bitmaps of the directory at the aligned offset below, which
            # QEMU does not read: their tables and data clusters leak
            **hints,
        )
