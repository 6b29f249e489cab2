"""The encryption area ends one cluster or more past the end of the file.

The area named by the full disk encryption header pointer (offset, length)
must lie inside the file (spec, "Full disk encryption header pointer").  As
in QEMU's check, an area that ends less than one cluster past the end of the
file is left to file-truncated, which reports any cut: that part reads as
zeros.

QEMU: the area is refcounted, so `qemu-img check` counts a corruption
("ERROR: counting reference for region exceeding the end of the file by one
cluster or more: offset ... size ..."); key material past the end reads as
zeros and the key slots cannot be unlocked.  Repair: the file was cut short
or the pointer is damaged; fetch the image again.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea
from qcow2lint.rulekit import ends_out_of_file

NAME = "fde-area-out-of-file"
CODE = "Q0406"
SEVERITY = "error"
SCOPE = EncryptionArea


def check(area, ctx):
    """Flag an encryption area that ends a cluster or more past EOF."""
    if ends_out_of_file(area.file_offset, area.length, ctx):
        ext = ctx.image.extension(spec.EXT_CRYPTO_HEADER)
        end = area.file_offset + area.length
        yield Problem(
            ext.data_offset,
            f"{ext.path}.offset",
            f"encryption area {area.file_offset:#x}..{end:#x} ({area.length} bytes) ends "
            f"{end - ctx.file_size} bytes past the end of the file ({ctx.file_size} bytes)",
        )
