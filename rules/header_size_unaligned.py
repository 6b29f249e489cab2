"""The virtual size is not a multiple of 512 bytes.

QEMU counts the virtual disk in 512-byte sectors; qemu-img create refuses
such sizes.  The tail past the last whole sector is not addressable.

QEMU: silently rounds the size down (a 64 KiB - 1 image shows as 65024
bytes; `qemu-img check` even prints "2/1 = 200.00% allocated").  Repair:
`qemu-img resize` the image to a multiple of 512 (e.g. the rounded-down
size with `--shrink`, or the next multiple up).
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-size-unaligned"
CODE = "Q0112"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag a virtual size that is not sector-aligned."""
    if header.size % 512:
        yield Problem(
            header.field_offset("size"),
            "header.size",
            f"virtual size {header.size} is not a multiple of 512; QEMU rounds it down to {header.size // 512 * 512}",
        )
