"""A bitmap's table is larger than QEMU supports.

QEMU accepts at most 0x8000000 bitmap table entries (BME_MAX_TABLE_SIZE) and
at most 512 MiB of bitmap data, bitmap_table_size * cluster_size
(BME_MAX_PHYS_SIZE).

QEMU: refuses to open the image ("Bitmap '<name>' doesn't satisfy the
constraints").  Repair: QEMU cannot open the image, so `qemu-img bitmap
--remove` fails too; clear autoclear bit 0 in the header (byte 95, bit 0)
and run `qemu-img check -r leaks IMG`: the read-write open drops every
bitmap and the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem, field_root

NAME = "bitmap-table-size-too-large"
CODE = "Q1426"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap 'NAME' doesn't satisfy the constraints",)


def check(entry, ctx):
    """Flag a table size over either of QEMU's limits."""
    size = entry.bitmap_table_size
    if not entry.inside_directory:
        return
    if size > spec.BME_MAX_TABLE_SIZE:
        message = f"bitmap_table_size is {size} entries; QEMU accepts at most {spec.BME_MAX_TABLE_SIZE:#x}"
    elif size * ctx.cluster_size > spec.BME_MAX_PHYS_SIZE:
        message = (
            f"bitmap_table_size {size} * cluster size {ctx.cluster_size} = {size * ctx.cluster_size} bytes "
            f"of bitmap data; QEMU accepts at most {spec.BME_MAX_PHYS_SIZE}"
        )
    else:
        return
    yield field_root(bitmap_entry_problem(entry, "bitmap_table_size", message), 4)
