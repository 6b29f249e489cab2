"""A version 2 header is followed by bytes that look like v3 feature fields.

A v2 header ends at byte 72, where its extension area starts (spec,
"Header").  When bytes 72..103 instead look like the five v3 fields, the
image was either written by an old QEMU (see below) or is a v3 image whose
version field was changed to 2 by hand or by a broken tool: its feature
bits, refcount width and header extensions are then silently lost.

"Looks like v3" means all of: incompatible_features (bytes 72..79) has no
bit outside QEMU's mask 0x1f, compatible_features (80..87) none outside
0x1, autoclear_features (88..95) none outside 0x3, refcount_order (96..99)
is at most 6, and header_length (100..103) is 104 or 112 (the values QEMU
has written).  qemu-img 7.2 writes zeros there in a v2 image, but QEMU of
around 2013 (the first releases with v3 support) wrote the v3 fields into
v2 headers too: genuine `compat=0.10` images of that time match, and are
clean.  The rule is therefore off by default and on in the `pedantic`
preset, where a match still hints at a v3 image whose version field was
changed to 2 by hand.

QEMU: treats byte 72 as the start of the extension area; the u32 there is
0 (an end marker), so it sees no header extensions at all and uses 16-bit
refcounts.  Repair: if the image really is v3, set version back to 3; to
make a real v2 image, `qemu-img amend -o compat=0.10` a v3 image instead.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-v2-has-v3-bytes"
CODE = "Q0114"
SEVERITY = "info"
SCOPE = Header
DEFAULT_ENABLED = False
#: The header_length values QEMU writes (104 before QEMU 5.1, then 112).
V3_HEADER_LENGTHS = (spec.V3_HEADER_LENGTH, spec.HEADER_PADDING_END)


def check(header, ctx):
    """Flag v3-looking bytes 72..103 in a v2 header."""
    incompat, compat, autoclear, refcount_order, header_length = header.v3_fields_on_disk
    looks_like_v3 = (
        not incompat & ~spec.INCOMPAT_MASK
        and not compat & ~spec.COMPAT_MASK
        and not autoclear & ~spec.AUTOCLEAR_MASK
        and refcount_order <= spec.MAX_REFCOUNT_ORDER
        and header_length in V3_HEADER_LENGTHS
    )
    if header.version == 2 and looks_like_v3:
        yield Problem(
            spec.V2_HEADER_LENGTH,
            "header.v3_fields_on_disk",
            f"version 2 header, but bytes 72..103 read as v3 fields: incompatible_features {incompat:#x}, "
            f"compatible_features {compat:#x}, autoclear_features {autoclear:#x}, refcount_order {refcount_order}, "
            f"header_length {header_length}; QEMU reads them as the v2 extension area",
        )
