"""A bitmap table entry has reserved bits set.

Bits 1-8 and 56-63 of a bitmap table entry are reserved and must be zero
(spec, "Bitmap table", mask 0xff000000000001fe).

QEMU: refuses to open the image ("Could not read bitmap_table table from
image for bitmap '<name>': Invalid argument"); for an in-use bitmap the open
works but `qemu-img check` aborts ("Check failed: Invalid argument").
Repair: QEMU cannot open the image, so `qemu-img bitmap --remove` fails
too; clear autoclear bit 0 in the header (byte 95, bit 0) and run
`qemu-img check -r leaks IMG`: the read-write open drops every bitmap and
the check frees their clusters.
"""

from qcow2lint import spec
from qcow2lint.records import BitmapTable
from qcow2lint.rulekit import entry_hits, u64

NAME = "bitmap-table-reserved-bits"
CODE = "Q1429"
SEVERITY = "error"
SCOPE = BitmapTable
QEMU_REFUSES = ("Could not read bitmap_table table from image for bitmap 'NAME': Invalid argument",)
MASK = spec.BME_TABLE_ENTRY_RESERVED_MASK


def check(table, ctx):
    """Flag every bitmap table entry with a reserved bit set."""
    yield from entry_hits(
        ctx,
        table,
        (table.entries & u64(MASK)) != 0,
        lambda e: f"bitmap table entry {e:#x} has reserved bits {e & MASK:#x} set (mask {MASK:#x})",
    )
