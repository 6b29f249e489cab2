"""The image has a backing file.

backing_file_offset not 0 says the image is an overlay: reads of clusters
it does not allocate go to the backing file it names (spec,
"backing_file_offset"; spec, "Header"; spec, "Header extensions").  The name is chosen by
whoever made the image, so an image from an untrusted source can make
whatever opens it read any file or network resource the opener can reach:
a host file (`/etc/shadow`), a device, or an `nbd:`/`http:` export
(CVE-2015-5163: Glance's image import disclosed host files through a
qcow2 backing file).

QEMU: opens the backing file it names when it reads the image (`qemu-img
convert`, `qemu-img info --backing-chain`, a VM boot) and returns its
contents for every unallocated cluster.  Off by default
(overlays are normal where images are trusted); info under `pedantic`; an
error under `untrusted`, as in OpenStack's `format_inspector.safety_check()` ("Image
has a backing file"), which also flags a backing_file_offset with an empty
name.
Repair: `qemu-img convert -O qcow2 OVERLAY FLAT` (with a trusted backing
file) makes a standalone image; or `qemu-img rebase -u -b '' IMAGE` to drop
the reference when the data does not depend on it.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import qemu_name, shown

NAME = "backing-file-present"
CODE = "Q0390"
SEVERITY = "info"
SCOPE = Header
DEFAULT_ENABLED = False
REPRO = """\
qemu-img create -f qcow2 base.qcow2 1M
qemu-img create -f qcow2 -b base.qcow2 -F qcow2 repro.qcow2
"""


def check(header, ctx):
    """Flag a non-zero backing_file_offset."""
    if not header.backing_file_offset:
        return
    raw = ctx.image.backing_file_name or b""
    name = qemu_name(raw)
    what = f"backing file {shown(name, 256)}" if name else "a backing file with an empty name"
    yield Problem(
        header.field_offset("backing_file_offset"),
        "header.backing_file_offset",
        f"the image names {what} (backing_file_offset {header.backing_file_offset:#x}); "
        "QEMU opens it to read every cluster the image does not allocate",
    )
