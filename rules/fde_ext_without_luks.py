"""A full disk encryption header pointer without LUKS encryption.

The extension 0x0537be77 may only be present when crypt_method is 2 (LUKS)
(spec, "Full disk encryption header pointer": "must be present if and only
if" the method needs metadata).

QEMU: refuses to open the image ("CRYPTO header extension only expected with
LUKS encryption method").  Repair: if the image is not encrypted, remove the
extension; if it is, crypt_method was damaged and must be set back to 2.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "fde-ext-without-luks"
CODE = "Q0402"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("CRYPTO header extension only expected with LUKS encryption method",)
METHODS = {spec.CRYPT_NONE: "none", spec.CRYPT_AES: "AES"}


def check(ext, ctx):
    """Flag an encryption header pointer in an image that is not LUKS-encrypted."""
    if ext.magic == spec.EXT_CRYPTO_HEADER and ctx.header.crypt_method != spec.CRYPT_LUKS:
        yield Problem(
            ext.file_offset,
            ext.path,
            f"full disk encryption header pointer present but crypt_method is {ctx.header.crypt_method} "
            f"({METHODS.get(ctx.header.crypt_method, 'unknown')}); "
            f"it is only allowed with crypt_method {spec.CRYPT_LUKS} (LUKS)",
        )
