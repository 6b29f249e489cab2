"""The backing file name reaches outside the image's directory.

The backing file name (spec, "backing_file_offset"; spec, "Header") is
used by QEMU as a C string (it ends at the first NUL byte).  A name that
is absolute, that names a device under `/dev`, that has a `..` component,
or that starts with a protocol prefix (a ':' before any '/': `json:`,
`nbd:`, `http:`, `https:`, `ftp:`, `ssh:`, `iscsi:`, `rbd:`, `gluster:`,
`file:`, `host_device:`, `null-co:`, `blkdebug:`, `vvfat:`, ...; QEMU's
path_has_protocol()) lets the image choose a host file, a device or a
network export.  The rule judges the string only: it never opens, stats
or resolves the name.  Any `..` is flagged, even `a/../b`, because
without resolving symbolic links the string cannot show that it stays
inside the directory.

Off by default (`qemu-img create -b /abs/path` writes such names); the
`pedantic` preset enables it at info, the `untrusted` preset at error.

QEMU: resolves a relative name against the image's directory; uses an
absolute name as it is; opens a protocol name with that protocol driver
(a `json:{...}` name is a whole block-node definition, e.g.
`json:{"driver":"raw","file":{"driver":"file","filename":"/etc/shadow"}}`).
Repair: `qemu-img rebase -u -b NAME -F FMT IMAGE` with a plain relative
name, or convert to a standalone image.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import name_hazards, qemu_name, shown

NAME = "backing-file-unsafe-name"
CODE = "Q0391"
SEVERITY = "info"
SCOPE = Header
DEFAULT_ENABLED = False


def check(header, ctx):
    """Flag an absolute, /dev, '..' or protocol backing file name."""
    if not header.backing_file_offset or not ctx.image.backing_file_name:
        return
    name = qemu_name(ctx.image.backing_file_name)
    hazards = name_hazards(name)
    if hazards:
        yield Problem(
            header.backing_file_offset,
            "backing_file_name",
            f"backing file name {shown(name, 256)} {' and '.join(hazards)}",
        )
