"""The v3 header_length is shorter than the 104-byte v3 header.

A version 3 header has 104 bytes of fixed fields, so header_length must be
at least 104 (spec, "Header", header_length).  The extension area would
otherwise start inside the v3 feature fields.

QEMU: refuses to open the image ("qcow2 header too short").  Repair: set
header_length back to 104 (or 112, what QEMU writes) by hand; qemu-img
cannot open the image to rewrite it.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import field_root

NAME = "header-length-too-small"
CODE = "Q0107"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("qcow2 header too short",)


def check(header, ctx):
    """Flag a v3 header_length below 104."""
    if header.version >= 3 and header.header_length < spec.V3_HEADER_LENGTH:
        yield field_root(
            Problem(
                header.field_offset("header_length"),
                "header.header_length",
                f"header_length {header.header_length} is shorter than the {spec.V3_HEADER_LENGTH}-byte v3 header",
            ),
            4,
        )
