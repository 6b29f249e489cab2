"""The image uses the legacy AES-CBC encryption (crypt_method 1).

crypt_method 1 is qcow2's original AES-CBC scheme with the passphrase used
directly as the key (spec, "Header", crypt_method).  It is cryptographically
weak and deprecated in favour of LUKS (crypt_method 2).

QEMU: needs the key to open the image ("Parameter 'encrypt.key-secret' is
required for cipher"; `qemu-img info` still opens it) and refuses it in
system emulators ("Use of AES-CBC encrypted qcow2 images is no longer
supported in system emulators").  Repair: convert to LUKS, e.g. `qemu-img convert
--object secret,id=old,data=OLDPASS --object secret,id=new,data=NEWPASS
--image-opts driver=qcow2,file.filename=OLD,encrypt.key-secret=old
-O qcow2 -o encrypt.format=luks,encrypt.key-secret=new NEW`.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "header-crypt-aes-deprecated"
CODE = "Q0106"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag crypt_method 1."""
    if header.crypt_method == spec.CRYPT_AES:
        yield Problem(
            header.field_offset("crypt_method"),
            "header.crypt_method",
            "crypt_method 1 is the legacy AES-CBC encryption, which QEMU no longer supports in system emulators",
        )
