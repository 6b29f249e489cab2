"""The v3 header_length is not a multiple of 8.

The spec requires header_length to be a multiple of 8 so that the header
extensions that follow are aligned (spec, "Header", header_length).

QEMU: silent (it does not check the alignment).  Repair: rewrite the header.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-length-unaligned"
CODE = "Q0109"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag a v3 header_length that is not 8-aligned."""
    if header.version >= 3 and header.header_length % 8:
        yield Problem(
            header.field_offset("header_length"),
            "header.header_length",
            f"header_length {header.header_length} is not a multiple of 8",
        )
