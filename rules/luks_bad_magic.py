"""The encryption area does not start with a LUKS1 header.

With crypt_method 2 the area named by the full disk encryption header
pointer must hold a LUKS1 header: magic "LUKS\\xba\\xbe" and version 1
(spec, "Full disk encryption header pointer").  A wrong offset in the
pointer, or damage to the area, shows up here.

QEMU: refuses to open the image ("Volume is not in LUKS format", or "LUKS
version N is not supported").  Repair: none in place; the key slots are
gone with the header, so restore the image from a backup.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea

NAME = "luks-bad-magic"
CODE = "Q0405"
SEVERITY = "error"
SCOPE = EncryptionArea
QEMU_REFUSES = (
    "Volume is not in LUKS format",
    "LUKS version N is not supported",
)


def check(area, ctx):
    """Flag a LUKS header with the wrong magic or version."""
    luks = area.luks
    if luks is None or ctx.header.crypt_method != spec.CRYPT_LUKS:
        return
    if luks.magic != spec.LUKS_MAGIC:
        yield Problem(
            luks.file_offset,
            "encryption.luks.magic",
            f"encryption area at {luks.file_offset:#x} starts with {luks.magic.hex(' ')}, "
            f"not the LUKS magic {spec.LUKS_MAGIC.hex(' ')}",
        )
    elif luks.version != spec.LUKS_VERSION:
        yield Problem(
            luks.field_offset("version"),
            "encryption.luks.version",
            f"LUKS header version is {luks.version}; QEMU's qcow2 encryption supports only {spec.LUKS_VERSION}",
        )
