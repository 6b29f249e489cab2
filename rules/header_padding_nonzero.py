"""The header padding after the compression type byte is not zero.

In a v3 header longer than 104 bytes, byte 104 is the compression type and
bytes 105-111 are padding that must be zero (spec, "Header").

QEMU: silent.  Repair: rewrite the header, e.g. `qemu-img amend` or convert.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-padding-nonzero"
CODE = "Q0110"
SEVERITY = "warning"
SCOPE = Header
REPRO = """\
qemu-img create -f qcow2 repro.qcow2 1M
# byte 106 lies in the padding after the compression type byte (104)
qemu-io -f raw -c 'write -P 1 106 1' repro.qcow2
"""


def check(header, ctx):
    """Flag non-zero bytes in 105..min(header_length, 112)."""
    nonzero = [i for i, byte in enumerate(header.padding) if byte]
    if header.version >= 3 and nonzero:
        first = spec.COMPRESSION_TYPE_OFFSET + 1 + nonzero[0]
        yield Problem(
            first,
            "header.padding",
            f"header padding bytes 105..{104 + len(header.padding)} must be zero, found {header.padding.hex(' ')}",
        )
