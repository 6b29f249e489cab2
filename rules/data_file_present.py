"""The image uses an external data file.

Incompatible bit 2 says guest data lives in a separate file, named by the
external data file name extension (0x44415441; spec, "External data
file name"; spec, "Header extensions"; spec, "Cluster mapping") or given by whoever opens the image.
The name is chosen by whoever made the image: OpenStack's CVE-2024-32498
was an uploaded image whose data file was a host path (`/etc/passwd`),
whose contents then came back as the guest disk.

QEMU: opens the data file when it opens the image for I/O (`qemu-img
convert`, `qemu-img check`, a VM) and reads every allocated cluster from
it.  `qemu-img info` of Debian's 7.2 build (7.2+dfsg-7+deb12u18) shows
the name without opening it (tested with strace); QEMU releases without
the CVE-2024-4467 fix open it for `info` too.  A name extension without
the bit is data-file-name-without-bit's finding (QEMU 7.2 ignores the
name; the `untrusted` preset makes that an error too, as other tools may
honour it).  Off by default (`qemu-img
create -o data_file=...` writes such images); info under `pedantic`; an
error under `untrusted`, as in OpenStack's
`format_inspector.safety_check()` ("Image has data_file set").
Repair: `qemu-img convert -O qcow2 IMAGE STANDALONE` (with a trusted data
file) copies the data into a self-contained image.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import qemu_name, shown

NAME = "data-file-present"
CODE = "Q1090"
SEVERITY = "info"
SCOPE = Header
DEFAULT_ENABLED = False
REPRO = """\
qemu-img create -f qcow2 -o data_file=repro.raw repro.qcow2 1M
"""


def check(header, ctx):
    """Flag incompatible bit 2 (external data file)."""
    if not header.has_data_file:
        return
    ext = ctx.image.extension(spec.EXT_DATA_FILE)
    name = qemu_name(ext.payload.name) if ext is not None and ext.payload is not None else None
    named = f"names the external data file {shown(name, 256)}" if name else "names no data file"
    yield Problem(
        header.field_offset("incompatible_features"),
        "header.incompatible_features",
        f"the image uses an external data file (incompatible bit 2) and {named}; "
        "QEMU opens it and reads guest data from it",
    )
