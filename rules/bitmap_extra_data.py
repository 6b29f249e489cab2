"""A bitmap has extra data, which QEMU does not support.

extra_data_size in a bitmap directory entry should be 0.  The spec allows
extra data, but a bitmap whose extra data the reader does not know may be
used only when flag bit 2 (extra_data_compatible) is set; QEMU knows no
extra data and refuses any (spec, "Bitmap directory").

Option `reading`: "qemu" (default) flags any non-zero extra_data_size;
"spec" flags extra data only without the extra_data_compatible flag (the
spec says such a bitmap must not be used).

QEMU: refuses to open the image ("Bitmap extra data is not supported").
Repair: QEMU cannot open the image, so `qemu-img bitmap --remove` fails
too; clear autoclear bit 0 in the header (byte 95, bit 0) and run
`qemu-img check -r leaks IMG`: the read-write open drops every bitmap and
the check frees their clusters (tested with QEMU 7.2).
"""

from qcow2lint import spec
from qcow2lint.records import BitmapDirectoryEntry
from qcow2lint.rulekit import bitmap_entry_problem, option_choice

NAME = "bitmap-extra-data"
CODE = "Q1421"
SEVERITY = "error"
SCOPE = BitmapDirectoryEntry
QEMU_REFUSES = ("Bitmap extra data is not supported",)
OPTIONS = {"reading": "qemu"}
OPTION_CONSTRAINTS = {"reading": {"choices": ("qemu", "spec")}}


def check(entry, ctx):
    """Flag non-zero extra_data_size (under the spec: without flag bit 2)."""
    reading = option_choice(ctx, "reading", OPTION_CONSTRAINTS["reading"]["choices"])
    if not entry.inside_directory or entry.extra_data_size == 0:
        return
    if reading == "qemu":
        yield bitmap_entry_problem(
            entry,
            "extra_data_size",
            f"bitmap extra_data_size is {entry.extra_data_size}; QEMU supports no bitmap extra data",
        )
    elif not entry.flags & spec.BME_FLAG_EXTRA_DATA_COMPATIBLE:
        yield bitmap_entry_problem(
            entry,
            "extra_data_size",
            f"bitmap extra_data_size is {entry.extra_data_size} and flags {entry.flags:#x} lack bit 2 "
            f"(extra_data_compatible): the bitmap must not be used",
        )
