"""The bitmap directory holds a different number of entries than nb_bitmaps.

The bitmap directory must hold exactly nb_bitmaps entries (spec, "Bitmaps
extension").  Counted are the entries that lie wholly inside
bitmap_directory_size, as QEMU counts them.  Not judged when nb_bitmaps is 0
or above 65535, or the directory size is 0 or too large
(bitmaps-ext-zero-bitmaps, bitmaps-ext-too-many, bitmap-dir-size-zero,
bitmap-dir-too-large), or the directory lies past the end of the file.  An
entry that crosses the end of the directory is also reported by
bitmap-dir-size-mismatch.

QEMU: refuses to open the image ("More bitmaps found than specified in
header extension" / "Less bitmaps found than specified in header
extension").  Repair: if only nb_bitmaps is wrong, set it to the entry
count; otherwise clear autoclear bit 0 in the header (byte 95, bit 0) and
run `qemu-img check -r leaks IMG`, which drops every bitmap and frees its
clusters.
"""

import attrs

from qcow2lint import spec
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem

NAME = "bitmap-count-mismatch"
CODE = "Q1409"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = (
    "More bitmaps found than specified in header extension",
    "Less bitmaps found than specified in header extension",
)


def check(ext, ctx):
    """Flag nb_bitmaps that differs from the entries in the directory."""
    count = bitmaps_ext_field(ext, "nb_bitmaps")
    start = bitmaps_ext_field(ext, "bitmap_directory_offset")
    size = bitmaps_ext_field(ext, "bitmap_directory_size")
    # Only the extension QEMU uses (the last one) has its directory read.
    if ext.payload is not ctx.image.bitmaps or start is None or start >= ctx.file_size:
        return
    if not (0 < count <= spec.MAX_BITMAPS and 0 < size <= spec.MAX_BITMAP_DIRECTORY_SIZE):
        return
    found = sum(entry.inside_directory for entry in ctx.image.bitmap_directory)
    if found != count:
        problem = bitmaps_ext_problem(
            ext,
            "nb_bitmaps",
            f"nb_bitmaps is {count} but the bitmap directory ({size} bytes at {start:#x}) holds "
            f"{found} {'entry' if found == 1 else 'entries'}",
        )
        # about the directory: when its offset is wrong, what is read there follows
        yield attrs.evolve(problem, about=start)
