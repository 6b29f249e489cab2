"""The external data file the image names does not exist.

An image with an external data file (incompatible bit 2) keeps every guest
data cluster in the file its data file name extension names (spec, "Header
extensions", External data file name string).  QEMU 7.2 opens that name as
it is: a relative name is relative to the working directory of the QEMU
process, not to the image's directory (unlike a backing file name).  The
rule resolves it the same way: against the linter's working directory, so
run the check from the directory QEMU will run in, or store an absolute
name.  A name with a protocol prefix (`nbd:`, `json:`, ...) is not a file
name and is skipped.  A name that resolves to a directory is reported too,
and so is an empty name (its first byte NUL), which names no file at all.  Like backing-file-missing, the rule only asks
whether the path exists and what it is (os.stat, following symbolic links as
QEMU does) and never opens, reads or lists anything the image names.  For
an image read from a URL only the empty name is reported: no local path is
looked at for a remote image (docs/remote.md).
QEMU's own iotest 244 opens an image whose data file does not exist.

QEMU: refuses to open the image for I/O ("Could not open 'NAME': No such
file or directory"; for a directory "'file' driver requires 'NAME' to be a
regular file"; for an empty name "The 'file' block driver requires a file
name"), e.g. `qemu-img check`, `qemu-img convert` and
qemu-io; `qemu-img info` (no I/O) still opens it.  Repair: put the data
file where the name points (or run QEMU where a relative name resolves), or
`qemu-img amend -o data_file=NAME IMAGE` to name where it is now.

Option `check-exists` (default true): false turns the rule off, for
pipelines that check the qcow2 file apart from its data file.  The
`untrusted` preset disables the rule: an untrusted image must not make the
linter probe host paths (`data-file-present` already refuses any data
file there).
"""

import os
import stat

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import protocol_prefix, qemu_name, shown
from qcow2lint.source import is_url

NAME = "data-file-missing"
CODE = "Q1004"
SEVERITY = "error"
SCOPE = Header
OPTIONS = {"check-exists": True}
QEMU_REFUSES = (
    "Could not open 'NAME': No such file or directory",
    "'file' driver requires 'NAME' to be a regular file",
    "The 'file' block driver requires a file name",
)


def check(header, ctx):
    """Flag an external data file name that resolves to no existing path."""
    if not ctx.options["check-exists"] or not ctx.image.readable or not header.has_data_file:
        return
    ext = ctx.image.extension(spec.EXT_DATA_FILE)
    if ext is None or ext.payload is None:
        return  # data-file-bit-without-file
    name = qemu_name(ext.payload.name)
    if not name:  # nothing to look up: QEMU has no file name to open
        yield Problem(
            ext.data_offset,
            f"{ext.path}.name",
            f"the external data file name is empty (its {ext.length} bytes start with a NUL byte); "
            "QEMU cannot read the image's data without a file",
        )
        return
    if protocol_prefix(name) is not None or is_url(ctx.image.path):
        return  # a remote image: no local path is looked at (docs/remote.md)
    looked = shown(os.path.abspath(name) if not name.startswith(b"/") else name, 256)
    try:
        status = os.stat(name)  # relative to the working directory, as QEMU 7.2 opens it
    except (OSError, ValueError):  # ValueError: a name too odd for the OS to look up
        yield Problem(
            ext.data_offset,
            f"{ext.path}.name",
            f"external data file {shown(name, 256)} does not exist (looked for {looked}); "
            "QEMU cannot read the image's data without it",
        )
        return
    if stat.S_ISDIR(status.st_mode):
        yield Problem(
            ext.data_offset,
            f"{ext.path}.name",
            f"external data file {shown(name, 256)} is a directory ({looked}); QEMU opens only a file or a device",
        )
