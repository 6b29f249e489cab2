"""The header names an encryption method QEMU does not know.

crypt_method must be 0 (none), 1 (AES-CBC, legacy) or 2 (LUKS) (spec,
"Header", crypt_method).  Any other value leaves the data unreadable: no
reader knows how it is encrypted.

QEMU: refuses to open the image ("Unsupported encryption method N").
Repair: none with qemu-img (it cannot open the image); if the value is a
bit flip of a known method, restore that value in the header by hand.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-crypt-method-unknown"
CODE = "Q0105"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Unsupported encryption method N",)


def check(header, ctx):
    """Flag crypt_method above 2."""
    if header.crypt_method > spec.CRYPT_LUKS:
        yield Problem(
            header.field_offset("crypt_method"),
            "header.crypt_method",
            f"crypt_method {header.crypt_method} is not 0 (none), 1 (AES) or 2 (LUKS)",
        )
