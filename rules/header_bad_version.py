"""The qcow2 version is neither 2 nor 3.

Only versions 2 and 3 exist (spec, "Header", version).  Nothing past the
version is judged for another version: a qcow version 1 file (`qemu-img
create -f qcow`) has the same magic and a different header, so this is its
one finding.

QEMU: refuses to open the image ("Unsupported qcow2 version N").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "header-bad-version"
CODE = "Q0102"
SEVERITY = "error"
SCOPE = Image
QEMU_REFUSES = ("Unsupported qcow2 version N",)


def check(image, ctx):
    """Flag an unknown version in a file with the qcow2 magic."""
    header = image.header
    if (
        header.magic == spec.QCOW_MAGIC
        and header.bytes_available >= 8
        and header.version not in spec.SUPPORTED_VERSIONS
    ):
        yield Problem(4, "header.version", f"version {header.version} is not a qcow2 version (2 or 3)")
