"""A non-zlib compression type is set without incompatible bit 3.

A compression type other than 0 (zlib) must be announced by incompatible
feature bit 3, so that readers that only know zlib refuse the image instead
of misreading compressed clusters (spec, "Additional fields (version 3 and
higher)", compression_type and incompatible bit 3).

QEMU: refuses to open the image ("qcow2: Compression type incompatible
feature bit must be set").  Repair: set incompatible bit 3 by hand (or
compression_type back to 0 if no cluster was compressed with the other
algorithm).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "compression-type-without-bit"
CODE = "Q0208"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("qcow2: Compression type incompatible feature bit must be set",)


def check(header, ctx):
    """Flag a non-zero compression type with incompatible bit 3 clear."""
    if header.version >= 3 and header.compression_type and not header.incompatible_features & spec.INCOMPAT_COMPRESSION:
        yield Problem(
            spec.COMPRESSION_TYPE_OFFSET,
            "header.compression_type",
            f"compression_type {header.compression_type} is not zlib, but incompatible_features "
            f"{header.incompatible_features:#x} lacks the compression type bit (bit 3)",
        )
