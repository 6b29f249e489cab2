"""The virtual disk size is above the configured maximum.

The header's size field is the guest disk size in bytes (spec, "size";
spec, "Header").  A small file can claim a huge disk: QEMU accepts up to
ceil(size / (cluster_size * l2_entries)) <= INT_MAX L1 entries, i.e.
exabytes.  What consumes the image (`qemu-img convert` to raw, a
preallocating import, a VM boot with a quota) then writes, allocates or
scans that many bytes (CVE-2013-2096: Nova copied uploaded qcow2 images
to raw without checking the virtual size, filling the host's disk).

Off by default (qemu-img makes disks of any size on request); the
`untrusted` preset enables it at error, `pedantic` at warning.  Option
`max-virtual-size` (bytes, at least 1) is 2 TiB (2199023255552) by default,
above the disks an upload service usually accepts and far below what a
hostile header can claim.  There is no "no limit" value: to judge no size,
leave the rule off.
QEMU: opens the image; nothing in the format bounds the size.
Repair: `qemu-img resize --shrink IMAGE SIZE` when the guest data fits.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.text import format_size

NAME = "virtual-size-too-large"
CODE = "Q0190"
SEVERITY = "warning"
SCOPE = Header
DEFAULT_ENABLED = False
OPTIONS = {"max-virtual-size": 2_199_023_255_552}  # 2 TiB
OPTION_CONSTRAINTS = {"max-virtual-size": {"minimum": 1}}


def check(header, ctx):
    """Flag a size above max-virtual-size."""
    limit = ctx.options["max-virtual-size"]
    if header.size > limit:
        yield Problem(
            header.field_offset("size"),
            "header.size",
            f"virtual size {header.size} bytes ({format_size(header.size)}) is above max-virtual-size "
            f"{limit} bytes ({format_size(limit)})",
        )
