"""The bitmap directory entries do not exactly fill bitmap_directory_size.

The bitmap directory is a run of variable-size entries (24 bytes, extra data
and name, padded to 8) that must exactly fill bitmap_directory_size (spec,
"Bitmap directory").  The directory is walked as QEMU walks it: entry after
entry while the next one starts inside the directory.  The rule flags a walk
that runs past the end (an entry crosses it) or stops short of it (the rest
of the directory lies past the end of the file).  A directory past the end
of the file, or whose size is 0 or too large, is left to
bitmap-dir-out-of-file, bitmap-dir-size-zero and bitmap-dir-too-large; a
wrong entry count to bitmap-count-mismatch.

QEMU: refuses to open the image ("Broken bitmap directory"), or with "More
bitmaps found than specified in header extension" when the entry that
crosses the end is one too many.  Repair: if only the size field is wrong,
set it to the sum of the entry sizes; otherwise clear autoclear bit 0 in
the header (byte 95, bit 0) and run `qemu-img check -r leaks IMG`, which
drops every bitmap and frees its clusters.
"""

import attrs

from qcow2lint import spec
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import bitmaps_ext_field, bitmaps_ext_problem

NAME = "bitmap-dir-size-mismatch"
CODE = "Q1408"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("Broken bitmap directory",)


def check(ext, ctx):
    """Flag a directory whose entries do not end exactly at its end."""
    start = bitmaps_ext_field(ext, "bitmap_directory_offset")
    size = bitmaps_ext_field(ext, "bitmap_directory_size")
    # Only the extension QEMU uses (the last one) has its directory read.
    if ext.payload is not ctx.image.bitmaps or start is None or start >= ctx.file_size:
        return
    if not 0 < size <= spec.MAX_BITMAP_DIRECTORY_SIZE:
        return
    end = start + size
    walked = [entry for entry in ctx.image.bitmap_directory if entry.file_offset < end]
    walk_end = walked[-1].file_offset + walked[-1].size if walked else start
    if walk_end > end:
        last = walked[-1]
        message = (
            f"entry {last.path} ({last.size} bytes at {last.file_offset:#x}) crosses the end of the "
            f"{size}-byte bitmap directory by {walk_end - end} bytes"
        )
    elif walk_end < end:
        eof = f"; the rest lies past the end of the file ({ctx.file_size} bytes)" if end > ctx.file_size else ""
        message = (
            f"bitmap_directory_size is {size} but its {len(walked)} entries end after {walk_end - start} bytes{eof}"
        )
    else:
        return
    # about the directory: when its offset is wrong, what is read there follows
    yield attrs.evolve(bitmaps_ext_problem(ext, "bitmap_directory_size", message), about=start)
