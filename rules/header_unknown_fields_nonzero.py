"""The v3 header has non-zero fields past byte 112 that QEMU does not know.

A header_length above 112 declares header fields of a later format version
at bytes 112..header_length-1.  A zero value means "feature absent", so
non-zero bytes there mean the image uses a feature this reader does not know
(spec, "Header", additional fields rule).

QEMU: keeps the bytes as "unknown header fields" and writes them back on a
header update; it does not interpret them.  Repair: none needed if the
image comes from a newer writer; otherwise zero the bytes or convert.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-unknown-fields-nonzero"
CODE = "Q0111"
SEVERITY = "info"
SCOPE = Header


def check(header, ctx):
    """Flag non-zero bytes in 112..header_length-1."""
    nonzero = [i for i, byte in enumerate(header.unknown_fields) if byte]
    if header.version >= 3 and nonzero:
        first = spec.HEADER_PADDING_END + nonzero[0]
        yield Problem(
            first,
            "header.unknown_fields",
            f"header_length {header.header_length} declares unknown header fields at bytes "
            f"112..{header.header_length - 1}; non-zero bytes: {len(nonzero)} of {len(header.unknown_fields)}, "
            f"the first is byte {first} ({header.unknown_fields[nonzero[0]]:#04x})",
        )
