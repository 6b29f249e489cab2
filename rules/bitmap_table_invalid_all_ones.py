"""A bitmap table entry has the all-ones flag together with a data offset.

Bit 0 of a bitmap table entry chooses "all zeroes" or "all ones" only when
the offset field (bits 9-55) is zero; with a non-zero offset it must be 0
(spec, "Bitmap table").  qcow2.py dumps such an entry as `invalid`.

QEMU: refuses to open the image ("Could not read bitmap_table table from
image for bitmap '<name>': Invalid argument").
Repair: QEMU cannot open the image, so `qemu-img bitmap --remove` fails
too; clear autoclear bit 0 in the header (byte 95, bit 0) and run
`qemu-img check -r leaks IMG`: the read-write open drops every bitmap and
the check frees their clusters.
"""

from qcow2lint import spec
from qcow2lint.records import BitmapTable
from qcow2lint.rulekit import entry_hits, u64

NAME = "bitmap-table-invalid-all-ones"
CODE = "Q1430"
SEVERITY = "error"
SCOPE = BitmapTable
QEMU_REFUSES = ("Could not read bitmap_table table from image for bitmap 'NAME': Invalid argument",)


def check(table, ctx):
    """Flag entries that are both all-ones and point at a data cluster."""
    entries = table.entries
    hits = ((entries & u64(spec.BME_TABLE_ENTRY_FLAG_ALL_ONES)) != 0) & (
        (entries & u64(spec.BME_TABLE_ENTRY_OFFSET_MASK)) != 0
    )
    yield from entry_hits(
        ctx,
        table,
        hits,
        lambda e: (
            f"bitmap table entry {e:#x} sets the all-ones flag (bit 0) but also has data offset "
            f"{e & spec.BME_TABLE_ENTRY_OFFSET_MASK:#x}"
        ),
    )
