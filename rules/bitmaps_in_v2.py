"""A version 2 image has a bitmaps extension.

Persistent bitmaps need autoclear bit 0, which only exists in version 3
headers; in a v2 image a bitmaps extension can never be marked consistent
(spec, "Bitmaps extension").

QEMU: ignores the bitmaps and warns ("This qcow2 v2 image contains
bitmaps, but they may have been modified by a program without persistent
bitmap support; so now they must all be considered inconsistent"); the
next read-write open drops the extension and `qemu-img check` counts the
bitmap clusters as leaked.  Repair: `qemu-img check -r leaks IMG` drops
the extension and frees the clusters; to keep bitmaps, upgrade with
`qemu-img amend -o compat=1.1 IMG` and recreate them.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "bitmaps-in-v2"
CODE = "Q1413"
SEVERITY = "warning"
SCOPE = HeaderExtension


def check(ext, ctx):
    """Flag a bitmaps extension in a version 2 image."""
    if ext.magic == spec.EXT_BITMAPS and ctx.header.version == 2:
        yield Problem(
            ext.file_offset,
            ext.path,
            "version 2 image has a bitmaps extension; v2 has no autoclear bit 0, so its bitmaps are "
            "always inconsistent",
        )
