"""The external data file name is absolute, under /dev, has a '..' or a protocol prefix.

The external data file name extension (0x44415441; spec, "External data
file name"; spec, "Header extensions") is read by QEMU as a C string (it ends at the
first NUL byte) and opened like any file name given to the block layer.
A name that is absolute (CVE-2024-32498: `/etc/passwd`), that names a
device under `/dev`, that has a `..` component, or that starts with a
protocol prefix (a ':' before any '/': `json:`, `nbd:`, `http:`, `file:`,
...; QEMU's path_has_protocol()) lets the image choose a host file, a
device or a network export as the source of its guest data.  The rule
judges the string only: it never opens, stats or resolves the name.  Any
`..` is flagged, even `a/../b`, because without resolving symbolic links
the string cannot show that it stays inside the directory.  A `json:`
name is CVE-2024-4467 (QEMU 4.0 to 9.0: `qemu-img info` on such an image
could read or write host files or exhaust memory).

Off by default (`qemu-img create -o data_file=/abs/path` writes such
names); the `pedantic` preset enables it at info, the `untrusted` preset
at error.

A plain relative name (`disk.raw`, `sub/disk.raw`) is not flagged: the
string chooses no host path by itself.  It is not bound to the image's
directory either (see below): where it leads depends on the directory
QEMU runs in, which the image does not choose.  The `untrusted` preset
refuses any data file anyway (data-file-present).

QEMU: opens the named file when it opens the image for I/O (`qemu-img
convert`, a VM; `qemu-img info` only without the CVE-2024-4467 fix) whenever incompatible bit 2
is set and no data file is given on the command line.  QEMU 7.2 resolves
a relative data file name against its own working directory, not the
image's directory (unlike a backing file name): `qemu-img check
dir/img.qcow2` run from elsewhere fails with "Could not open 'ext.data'"
although `dir/ext.data` exists.  Repair: `qemu-img amend -o data_file=NAME IMAGE` with a
plain relative name, or convert to a self-contained image.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import name_hazards, qemu_name, shown

NAME = "data-file-unsafe-name"
CODE = "Q1091"
SEVERITY = "info"
SCOPE = HeaderExtension
DEFAULT_ENABLED = False


def check(ext, ctx):
    """Flag an absolute, /dev, '..' or protocol data file name."""
    if ext.magic != spec.EXT_DATA_FILE or ext.payload is None:
        return
    name = qemu_name(ext.payload.name)
    hazards = name_hazards(name)
    if hazards:
        yield Problem(
            ext.data_offset,
            f"{ext.path}.name",
            f"external data file name {shown(name, 256)} {' and '.join(hazards)}",
        )
