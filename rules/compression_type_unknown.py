"""The compression type byte names an algorithm QEMU does not know.

Byte 104 of a v3 header longer than 104 bytes is the compression type of
compressed clusters: 0 deflate (zlib) or 1 zstd (spec, "Additional fields
(version 3 and higher)", compression_type).

QEMU: refuses to open the image ("qcow2: unknown compression type: N").
Repair: restore the type the image was written with by hand (0 or 1;
with 1 the incompatible bit 3 must be set); qemu-img cannot open it.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "compression-type-unknown"
CODE = "Q0207"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("qcow2: unknown compression type: N",)


def check(header, ctx):
    """Flag a compression type other than 0 or 1."""
    if (
        header.version >= 3
        and header.compression_type is not None
        and header.compression_type not in spec.COMPRESSION_NAMES
    ):
        yield Problem(
            spec.COMPRESSION_TYPE_OFFSET,
            "header.compression_type",
            f"compression_type {header.compression_type} is neither 0 (zlib) nor 1 (zstd)",
        )
