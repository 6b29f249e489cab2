"""A bitmap is marked in use.

Flag bit 0 (in_use) means a program has the bitmap loaded and may have
changed the disk without updating it; the bitmap data cannot be trusted
(spec, "Bitmap directory").  An image that is open in a running QEMU has its
bitmaps in use; seen on an image at rest, the bit means QEMU crashed or was
killed before it stored the bitmaps.

QEMU: loads the bitmap as inconsistent and does not read its data; it
cannot be used for incremental backups.  Repair: `qemu-img bitmap --remove
IMG NAME` and `--add` a new one (then take a full backup).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem, shown

NAME = "bitmap-in-use"
CODE = "Q1434"
SEVERITY = "warning"
SCOPE = BitmapDirectoryEntry
REPRO = """\
qemu-img create -f qcow2 repro.qcow2 1M
qemu-img bitmap --add repro.qcow2 b0
# qemu-io is killed (as by a crash) while the bitmap is loaded for writing
qemu-io -c 'sigraise 9' repro.qcow2
"""


def check(entry, ctx):
    """Flag a bitmap with the in_use flag."""
    if entry.inside_directory and entry.flags & spec.BME_FLAG_IN_USE:
        yield bitmap_entry_problem(
            entry,
            "flags",
            f"flags {entry.flags:#x} set bit 0 (in_use): bitmap {shown(entry.name_bytes)} is inconsistent",
        )
