"""The file does not start with the qcow2 magic.

A qcow2 image starts with "QFI\xfb" (0x514649fb) (spec, "Header").  Anything
else is not a qcow2 image: nothing else in the file is judged.

QEMU: refuses to open it ("Image is not in qcow2 format").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "header-bad-magic"
CODE = "Q0101"
SEVERITY = "error"
SCOPE = Image
QEMU_REFUSES = ("Image is not in qcow2 format",)


def check(image, ctx):
    """Flag a wrong magic (when the file has at least 4 bytes)."""
    header = image.header
    if header.bytes_available >= 4 and header.magic != spec.QCOW_MAGIC:
        yield Problem(
            0,
            "header.magic",
            f"not a qcow2 image: magic {header.magic:#010x} (bytes {header.magic.to_bytes(4, 'big')!r}), "
            f"expected {spec.QCOW_MAGIC:#x} (b'QFI\\xfb')",
        )
