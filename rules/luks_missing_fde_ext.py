"""A LUKS-encrypted image has no full disk encryption header pointer.

With crypt_method 2 (LUKS) the header extension 0x0537be77 must name the
area that holds the LUKS header (spec, "Full disk encryption header
pointer").  Without it the image cannot be decrypted.

QEMU: refuses to open the image ("Missing CRYPTO header for crypt method 2");
`qemu-img info`, which opens it without the key, crashes instead (a
segmentation fault in QEMU 7.2).
Repair: none in place; restore the extension (offset and length of the LUKS
area) from a copy of the image, or recover the data from a backup.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "luks-missing-fde-ext"
CODE = "Q0401"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Missing CRYPTO header for crypt method 2",)


def check(header, ctx):
    """Flag crypt_method 2 without the encryption header pointer."""
    if header.crypt_method != spec.CRYPT_LUKS:
        return
    if ctx.image.extension(spec.EXT_CRYPTO_HEADER) is None:
        yield Problem(
            header.field_offset("crypt_method"),
            "header.crypt_method",
            f"crypt_method is {header.crypt_method} (LUKS) but there is no full disk encryption header "
            f"pointer extension ({spec.EXT_CRYPTO_HEADER:#010x})",
        )
