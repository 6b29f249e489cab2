"""The file is shorter than the qcow2 header.

A v2 header has 72 bytes; a v3 header has header_length bytes (at least 104)
(spec, "Header").  An empty file gets this finding.

QEMU: reads past the end of the file come back as zeros, so it usually
reports "Image is not in qcow2 format".  Repair: the image was cut short
(an interrupted copy or download): fetch it again.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "header-file-too-short"
CODE = "Q0103"
SEVERITY = "error"
SCOPE = Image


def check(image, ctx):
    """Flag a file shorter than its header."""
    header = image.header
    if header.magic == spec.QCOW_MAGIC and header.version == 3:
        needed = max(header.header_length, spec.V3_HEADER_LENGTH)
    else:
        needed = spec.V2_HEADER_LENGTH
    if image.file_size < needed:
        # Every other finding about such a file judges bytes QEMU reads as
        # zeros past its end: all of them follow from this one.
        yield Problem(
            0,
            "header",
            f"the file has {image.file_size} bytes, fewer than the {needed}-byte qcow2 header",
            covers=(0, 1 << 63),
        )
