"""A LUKS header has stripes or a key length no QEMU-made image has.

QEMU writes LUKS1 headers with 4000 anti-forensic stripes per key slot and
a master key of 16 to 64 bytes (32, 48 or 64 for the XTS modes; the LUKS1 on-disk format).  Each slot's key material is key_bytes * stripes bytes, read and
merged with one hash per stripe whenever the slot is tried.  A slot with
another stripe count, or a master key length no cipher uses, is a crafted
header: a reader that does not check them allocates and hashes whatever
the header asks for.  QEMU 7.2 refuses stripes other than 4000 ("Keyslot
N is corrupted (stripes 8000 != 4000)", tested) and key lengths that
break its cipher or slot layout checks.

QEMU: 7.2 refuses to open the image (even `qemu-img info`); an error for
that reason.
Repair: none in place; with the key, `qemu-img convert` to a new
encrypted image made by qemu-img.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea

NAME = "luks-params-unusual"
CODE = "Q0491"
SEVERITY = "error"
SCOPE = EncryptionArea
QEMU_REFUSES = ("Keyslot N is corrupted (stripes N != 4000)",)
STRIPES = 4000
KEY_BYTES = (16, 24, 32, 48, 64)


def check(area, ctx):
    """Flag stripes other than 4000 and master key lengths no cipher uses."""
    luks = area.luks
    if luks is None or ctx.header.crypt_method != spec.CRYPT_LUKS or luks.magic != spec.LUKS_MAGIC:
        return
    if luks.key_bytes not in KEY_BYTES:
        yield Problem(
            luks.file_offset + spec.LUKS_HEADER_FIELDS["key_bytes"],
            "encryption.luks.key_bytes",
            f"the LUKS master key is {luks.key_bytes} bytes long; QEMU's ciphers use "
            f"{', '.join(map(str, KEY_BYTES))} (key material per slot is key_bytes * stripes bytes)",
        )
    for slot in luks.key_slots:
        if slot.stripes != STRIPES:
            yield Problem(
                slot.file_offset + spec.LUKS_KEY_SLOT_FIELDS["stripes"],
                f"encryption.luks.key_slots[{slot.index}].stripes",
                f"LUKS key slot {slot.index} has {slot.stripes} anti-forensic stripes, not {STRIPES} "
                f"({luks.key_bytes * slot.stripes} bytes of key material to read and hash)",
            )
