"""A bitmap's table does not have the size the disk and granularity need.

A bitmap has one bit per granularity bytes of the disk; its table has one
entry per cluster of that bit array: bitmap_table_size must be ceil(len /
(granularity * cluster_size * 8)), where len is the virtual size rounded
down to 512-byte sectors as QEMU uses it (spec, "Bitmap table").  Not judged
when bitmap_table_size is 0 (bitmap-table-size-zero).

QEMU checks the size only for bitmaps that are not in_use: an in_use
bitmap's data is not read, so QEMU accepts any size there (tested).  A wrong
size in an in_use bitmap deserves only a warning (QEMU does not read that
bitmap); since a rule has one severity, option `in-use` decides: "skip"
(default) judges only bitmaps that are not in_use (an in_use bitmap is still
reported by the bitmap-in-use warning), "report" judges in_use bitmaps too,
at this rule's severity.

QEMU: a table too small makes it refuse the image ("Bitmap '<name>'
doesn't satisfy the constraints"), a table too big too ("Could not read
bitmap '<name>' from image: Invalid argument").  Repair: QEMU cannot open
the image, so `qemu-img bitmap --remove` fails too; clear autoclear bit 0
in the header (byte 95, bit 0) and run `qemu-img check -r leaks IMG`: the
read-write open drops every bitmap and the check frees their clusters
(tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_disk_length, bitmap_entry_problem, bitmap_table_entries_needed, option_choice

NAME = "bitmap-table-size-wrong"
CODE = "Q1427"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = (
    "Bitmap 'NAME' doesn't satisfy the constraints",
    "Could not read bitmap 'NAME' from image: Invalid argument",
)
OPTIONS = {"in-use": "skip"}
OPTION_CONSTRAINTS = {"in-use": {"choices": ("skip", "report")}}


def check(entry, ctx):
    """Flag a table size other than the disk length needs."""
    in_use = entry.flags & spec.BME_FLAG_IN_USE
    if option_choice(ctx, "in-use", OPTION_CONSTRAINTS["in-use"]["choices"]) == "skip" and in_use:
        return
    needed = bitmap_table_entries_needed(ctx.header, entry)
    size = entry.bitmap_table_size
    if entry.inside_directory and size != 0 and needed is not None and size != needed:
        yield bitmap_entry_problem(
            entry,
            "bitmap_table_size",
            f"bitmap_table_size is {size} but a {bitmap_disk_length(ctx.header)}-byte disk with granularity_bits "
            f"{entry.granularity_bits} and {ctx.cluster_size}-byte clusters needs {needed}"
            + (" (the bitmap is in use)" if in_use else ""),
        )
