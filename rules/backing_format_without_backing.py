"""A backing file format is given, but the image has no backing file.

The backing file format extension names the format of the backing file
(spec, "Header extensions", Backing file format name string); with
backing_file_offset 0 there is no backing file for it to describe.  The
backing file was most likely dropped by editing only the header.

QEMU: silent (it reads the format and never uses it); `qemu-img create`
refuses the combination ("Backing format cannot be used without backing
file").  Repair: `qemu-img rebase -u -b '' IMAGE` rewrites the header
without it.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import shown

NAME = "backing-format-without-backing"
CODE = "Q0307"
SEVERITY = "warning"
SCOPE = HeaderExtension


def check(ext, ctx):
    """Flag a backing format extension when backing_file_offset is 0."""
    if ext.magic == spec.EXT_BACKING_FORMAT and ctx.header.backing_file_offset == 0:
        yield Problem(
            ext.file_offset,
            ext.path,
            f"backing format {shown(ext.payload.name)} is given, but backing_file_offset is 0 (no backing file)",
        )
