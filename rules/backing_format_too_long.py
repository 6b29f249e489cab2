"""The backing file format name is 16 bytes or longer.

The backing file format extension holds a format name such as "qcow2" or
"raw" (spec, "Header extensions", Backing file format name string).  QEMU
keeps it in a 16-byte buffer with a terminating NUL, so it accepts at most
15 bytes; no QEMU format name is longer.

QEMU: refuses to open the image ("ERROR: ext_backing_format: len=N too
large (>=16)").  Repair: qemu-img cannot open the image, so fix the
extension by hand: the real format name (e.g. "qcow2") and its length.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import shown

NAME = "backing-format-too-long"
CODE = "Q0306"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("ERROR: ext_backing_format: len=N too large (>=16)",)
#: sizeof(BlockDriverState.backing_format) in QEMU.
QEMU_BUFFER = 16


def check(ext, ctx):
    """Flag a backing format extension of 16 bytes or more."""
    if ext.magic == spec.EXT_BACKING_FORMAT and ext.length >= QEMU_BUFFER:
        yield Problem(
            ext.field_offset("length"),
            f"{ext.path}.length",
            f"backing format name {shown(ext.payload.name)} is {ext.length} bytes long; QEMU accepts at most {QEMU_BUFFER - 1}",
        )
