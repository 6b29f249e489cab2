"""A bitmap has an empty name.

name_size in a bitmap directory entry must not be 0: every bitmap has a
name, unique in the image (spec, "Bitmap directory").

QEMU: accepts it and lists a bitmap with an empty name (tested).  Repair:
`qemu-img bitmap --remove IMG ''` removes it (tested with QEMU 7.2); add
it again under a name with `qemu-img bitmap --add`.
"""

from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem

NAME = "bitmap-name-empty"
CODE = "Q1414"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry


def check(entry, ctx):
    """Flag a bitmap with name_size 0."""
    if entry.inside_directory and entry.name_size == 0:
        yield bitmap_entry_problem(entry, "name_size", "bitmap name_size is 0; a bitmap must have a name")
