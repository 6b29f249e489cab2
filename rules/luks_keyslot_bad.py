"""A LUKS key slot is corrupted, or its key material overlaps something.

Each of the eight LUKS1 key slots has a state word that is either enabled
(0x00ac71f3) or disabled (0x0000dead); an enabled slot needs a non-zero
PBKDF2 iteration count.  A slot's key material (key_bytes * stripes bytes,
in 512-byte sectors rounded up to 4 KiB, from key_material_offset sectors
after the LUKS header's start) must start after the first 4 KiB (the LUKS
header), end before the encrypted payload (payload_offset sectors), not
overlap another slot's key material, and lie inside the encryption area,
whose size is the length in the full disk encryption header pointer (spec,
"Full disk encryption header pointer").  Stripes other than 4000 are
luks-params-unusual's.

QEMU: refuses to open the image, even read-only and for `qemu-img info`
(qcrypto_block_luks_check_header): "Keyslot N state (active/disable) is
corrupted", "Keyslot N iteration count is zero", "Keyslot N is overlapping
with the LUKS header", "Keyslot N is overlapping with the encrypted
payload", "Keyslots N and M are overlapping in the header"; an error for
that reason.  Key material past the encryption area cannot be read, so
opening with that slot's key fails ("Request for data outside of extension
header").
Repair: none in place; while the image still opens with some key,
`qemu-img convert` can copy the data to a new encrypted image, otherwise
restore it from a backup.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea

NAME = "luks-keyslot-bad"
CODE = "Q0408"
SEVERITY = "error"
SCOPE = EncryptionArea
QEMU_REFUSES = (
    "Keyslot N state (active/disable) is corrupted",
    "Keyslot N iteration count is zero",
    "Keyslot N is overlapping with the LUKS header",
    "Keyslot N is overlapping with the encrypted payload",
    "Keyslots N and N are overlapping in the header",
)
#: The LUKS header's area before the first key material, in sectors (QEMU's key slot offset, 4 KiB).


def material_sectors(luks, slot):
    """The sectors of a slot's key material as QEMU counts them: key_bytes
    * stripes bytes in whole sectors, rounded up to spec.LUKS_HEADER_SECTORS."""
    sectors = -(-luks.key_bytes * slot.stripes // spec.SECTOR_SIZE)
    return -(-sectors // spec.LUKS_HEADER_SECTORS) * spec.LUKS_HEADER_SECTORS


def check(area, ctx):
    """Flag key slots QEMU's LUKS header check refuses, and key material past the area."""
    luks = area.luks
    if luks is None or ctx.header.crypt_method != spec.CRYPT_LUKS or luks.magic != spec.LUKS_MAGIC:
        return
    # A malformed pointer (reported by fde-ext-bad-length) gives no usable length.
    pointer = ctx.image.extension(spec.EXT_CRYPTO_HEADER)
    length_known = pointer is not None and pointer.length == spec.CRYPTO_EXT_SIZE
    for slot in luks.key_slots:
        where = f"encryption.luks.key_slots[{slot.index}]"
        if slot.active not in (spec.LUKS_KEY_ENABLED, spec.LUKS_KEY_DISABLED):
            yield Problem(
                slot.file_offset,
                f"{where}.active",
                f"LUKS key slot {slot.index} state is {slot.active:#010x}, neither enabled "
                f"({spec.LUKS_KEY_ENABLED:#010x}) nor disabled ({spec.LUKS_KEY_DISABLED:#010x})",
            )
            continue
        if slot.active == spec.LUKS_KEY_ENABLED and slot.iterations == 0:
            yield Problem(
                slot.file_offset + 4,
                f"{where}.iterations",
                f"LUKS key slot {slot.index} is enabled with 0 PBKDF2 iterations",
            )
        problem = _material_problem(luks, slot, area.length if length_known else None)
        if problem is not None:  # one finding per slot: the first check of QEMU's that fails
            yield Problem(slot.field_offset("key_material_offset"), f"{where}.key_material_offset", problem)


def _material_problem(luks, slot, area_length):
    """What is wrong with where a slot's key material lies, in QEMU's order
    of checks, then the encryption area's bound (None when nothing)."""
    start, length = slot.key_material_offset, material_sectors(luks, slot)
    if start < spec.LUKS_HEADER_SECTORS:
        return (
            f"LUKS key slot {slot.index} key material starts at sector {start}, inside the LUKS header's "
            f"first {spec.LUKS_HEADER_SECTORS} sectors"
        )
    if (
        start + length > luks.payload_offset >= spec.LUKS_HEADER_SECTORS
    ):  # a payload inside the header is luks-header-bad's
        return (
            f"LUKS key slot {slot.index} key material (sectors {start}..{start + length}) runs into the "
            f"encrypted payload at sector {luks.payload_offset}"
        )
    for other in luks.key_slots[slot.index + 1 :]:
        other_start = other.key_material_offset
        if start < other_start + material_sectors(luks, other) and other_start < start + length:
            return (
                f"LUKS key slots {slot.index} and {other.index} have overlapping key material "
                f"(sectors {start} and {other_start})"
            )
    material = -(-luks.key_bytes * slot.stripes // spec.SECTOR_SIZE) * spec.SECTOR_SIZE
    end = start * spec.SECTOR_SIZE + material
    if slot.active == spec.LUKS_KEY_ENABLED and area_length is not None and end > area_length:
        return (
            f"LUKS key slot {slot.index} key material (sector {start}, {material} bytes) ends at byte {end} "
            f"of the encryption area, past its length {area_length}"
        )
    return None
