"""The full disk encryption header pointer is not 16 bytes long.

The extension 0x0537be77 holds exactly two u64 fields, the offset and the
length of the encryption area, so its length must be 16 (spec, "Full disk
encryption header pointer").

QEMU: refuses to open the image ("CRYPTO header extension size N, but
expected size 16").  Repair: none with qemu-img; the offset and length must
be restored from a copy of the image.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "fde-ext-bad-length"
CODE = "Q0403"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("CRYPTO header extension size N, but expected size 16",)


def check(ext, ctx):
    """Flag an encryption header pointer whose length is not 16."""
    if ext.magic == spec.EXT_CRYPTO_HEADER and ext.length != spec.CRYPTO_EXT_SIZE:
        yield Problem(
            ext.field_offset("length"),
            f"{ext.path}.length",
            f"full disk encryption header pointer is {ext.length} bytes long; it must be "
            f"{spec.CRYPTO_EXT_SIZE} (u64 offset, u64 length)",
        )
