"""Incompatible bit 3 is set but the compression type is zlib.

Incompatible feature bit 3 means "the compression type field is not zlib";
it must be set if and only if byte 104 (present when header_length > 104) is
non-zero (spec, "Additional fields (version 3 and higher)",
compression_type).

QEMU: refuses to open the image ("qcow2: Compression type incompatible
feature bit must not be set").  Repair: clear bit 3 by hand (or restore
the non-zero compression type the image was written with).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "compression-bit-without-type"
CODE = "Q0209"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("qcow2: Compression type incompatible feature bit must not be set",)


def check(header, ctx):
    """Flag incompatible bit 3 when the compression type is 0 or absent."""
    if header.version >= 3 and header.incompatible_features & spec.INCOMPAT_COMPRESSION and not header.compression_type:
        why = (
            f"header_length {header.header_length} has no compression type field"
            if header.compression_type is None
            else "compression_type is 0 (zlib)"
        )
        yield Problem(
            header.field_offset("incompatible_features"),
            "header.incompatible_features",
            f"incompatible_features {header.incompatible_features:#x} has the compression type bit (bit 3) "
            f"set, but {why}",
        )
