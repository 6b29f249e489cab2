"""A compression type byte lies past header_length, where QEMU ignores it.

Byte 104 is the compression type only when header_length is above 104 (spec,
"Additional fields (version 3 and higher)", compression_type).  With
header_length 104 the extension area starts at byte 104, so a compression
type written there without raising header_length is ignored and compressed
clusters are read as zlib.

Byte 104 of such a header is the first byte of the first extension's type.
Images from QEMU before 5.1 have header_length 104 and a known extension
there (backing format 0xe2..., feature table 0x68..., ...), which is
normal; this rule fires only when byte 104 is non-zero and the u32 at byte
104 is not a known extension type, i.e. it reads as a compression type
rather than as an extension.  ext-unknown-type also reports that
"extension".

QEMU: ignores the byte and uses zlib (tested: the image opens), and walks
the bytes from 104 as an unknown extension.  Repair: set header_length to
112 and move the extension area behind byte 112, or zero byte 104.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "compression-type-ignored-short-header"
CODE = "Q0210"
SEVERITY = "info"
SCOPE = Header


def check(header, ctx):
    """Flag a non-zero, non-extension byte 104 in a v3 header of 104 bytes or less."""
    if header.version < 3 or header.header_length > spec.V3_HEADER_LENGTH:
        return
    at_104 = [ext for ext in ctx.image.extensions if ext.file_offset == spec.COMPRESSION_TYPE_OFFSET]
    if at_104 and at_104[0].magic not in spec.EXT_NAMES and at_104[0].magic >> 24:
        value = at_104[0].magic >> 24
        yield Problem(
            spec.COMPRESSION_TYPE_OFFSET,
            "header.compression_type",
            f"byte 104 holds compression type {value} ({spec.COMPRESSION_NAMES.get(value, 'unknown')}), but header_length "
            f"{header.header_length} ends the header before it: QEMU ignores it and uses zlib",
        )
