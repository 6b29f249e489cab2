"""The image has a backing file but no backing file format.

The backing file format extension (0xe2792aca; spec, "Header extensions";
spec, "Header extensions") tells QEMU which driver reads the backing file.  Without
it (or with an empty one) QEMU probes the backing file's format from its
contents: a raw backing file whose guest wrote a qcow2 header into its
first sector is then opened as qcow2, and that header's own backing file
or data file names a host file of the attacker's choice (the raw-probing
attacks behind CVE-2008-2004).

QEMU: probes the format (qemu-img 7.2 refuses to *create* such an overlay,
"Backing file specified without backing format", but opens existing ones).
Repair: `qemu-img rebase -u -b BACKING -F FMT IMAGE` to record the format.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import qemu_name, shown

NAME = "backing-format-missing"
CODE = "Q0392"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag a backing file name without a (non-empty) backing format."""
    name = qemu_name(ctx.image.backing_file_name or b"")
    if not header.backing_file_offset or not name:
        return
    ext = ctx.image.extension(spec.EXT_BACKING_FORMAT)
    if ext is not None and qemu_name(ext.payload.name if ext.payload is not None else b""):
        return
    what = "has no backing format extension" if ext is None else "has an empty backing format"
    yield Problem(
        header.field_offset("backing_file_offset"),
        "header.backing_file_offset",
        f"backing file {shown(name, 256)} {what}: QEMU probes the backing file's format from its contents",
    )
