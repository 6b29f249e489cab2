"""A LUKS key slot is corrupted or its key material lies outside the area.

Each of the eight LUKS1 key slots has a state word that is either enabled
(0x00ac71f3) or disabled (0x0000dead); an enabled slot's key material
(key_bytes * stripes bytes, rounded up to 512-byte sectors, starting at
key_material_offset sectors from the LUKS header) must lie inside the
encryption area, whose size is the length in the full disk encryption header
pointer (spec, "Full disk encryption header pointer").

QEMU: a corrupted state word makes it refuse to open the image ("Keyslot N
state (active/disable) is corrupted"), even for `qemu-img info`; key
material past the area cannot be read, so opening with that slot's key
fails ("Request for data outside of extension header").
Repair: none in place; while the image still opens with some key,
`qemu-img convert` can copy the data to a new encrypted image, otherwise
restore it from a backup.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea

NAME = "luks-keyslot-bad"
CODE = "Q0408"
SEVERITY = "warning"
SCOPE = EncryptionArea
SLOT_ENABLED = 0x00AC71F3
SLOT_DISABLED = 0x0000DEAD
SECTOR = 512


def check(area, ctx):
    """Flag key slots with an unknown state or key material past the area."""
    luks = area.luks
    if luks is None or ctx.header.crypt_method != spec.CRYPT_LUKS or luks.magic != spec.LUKS_MAGIC:
        return
    # A malformed pointer (reported by fde-ext-bad-length) gives no usable length.
    pointer = ctx.image.extension(spec.EXT_CRYPTO_HEADER)
    length_known = pointer is not None and pointer.length == spec.CRYPTO_EXT_SIZE
    for slot in luks.key_slots:
        where = f"encryption.luks.key_slots[{slot.index}]"
        if slot.active not in (SLOT_ENABLED, SLOT_DISABLED):
            yield Problem(
                slot.file_offset, f"{where}.active",
                f"LUKS key slot {slot.index} state is {slot.active:#010x}, neither enabled "
                f"({SLOT_ENABLED:#010x}) nor disabled ({SLOT_DISABLED:#010x})",
            )  # fmt: skip
            continue
        material = -(-luks.key_bytes * slot.stripes // SECTOR) * SECTOR
        end = slot.key_material_offset * SECTOR + material
        if slot.active == SLOT_ENABLED and length_known and end > area.length:
            yield Problem(
                slot.field_offset("key_material_offset"), f"{where}.key_material_offset",
                f"LUKS key slot {slot.index} key material (sector {slot.key_material_offset}, {material} bytes) "
                f"ends at byte {end} of the encryption area, past its length {area.length}",
            )  # fmt: skip
