"""The backing file format names a driver QEMU does not have.

The backing file format extension (0xe2792aca; spec, "Header extensions")
names the block driver that reads the backing file: "qcow2", "raw",
"vmdk", ...  QEMU looks the name up among its drivers byte for byte, so
"QCOW2", "qCow2", a name with a typo or bytes that are no name at all make
every open of the image fail.  The name is what QEMU reads: up to the first
NUL byte.  An empty name (QEMU probes the format) is backing-format-missing's,
a name of 16 bytes or more backing-format-too-long's, a format without a
backing file backing-format-without-backing's.  The driver list is QEMU
7.2's (`qemu-img --help`, "Supported formats"); QEMU's own iotest 114 opens
an overlay whose backing format is "foo".

QEMU: refuses to open the image ("Could not open backing file: Unknown
driver 'NAME'"); `qemu-img info` still shows it.  Repair: `qemu-img rebase
-u -b BACKING -F FMT IMAGE` with the real format.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import qemu_name, shown

NAME = "backing-format-unknown"
CODE = "Q0315"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Could not open backing file: Unknown driver 'NAME'",)
#: sizeof(BlockDriverState.backing_format) in QEMU: longer names are refused earlier.
QEMU_BUFFER = 16


def check(header, ctx):
    """Flag a backing format that is no QEMU driver name."""
    if not header.backing_file_offset or not qemu_name(ctx.image.backing_file_name or b""):
        return
    ext = ctx.image.extension(spec.EXT_BACKING_FORMAT)
    if ext is None or ext.payload is None or ext.length >= QEMU_BUFFER:
        return
    name = qemu_name(ext.payload.name)
    if name and name not in spec.QEMU_DRIVERS:
        yield Problem(
            ext.data_offset,
            f"{ext.path}.name",
            f"backing format {shown(name)} is no QEMU block driver (QEMU knows e.g. 'qcow2', 'raw', 'vmdk'; "
            "names are case-sensitive)",
        )
