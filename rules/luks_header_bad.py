"""The LUKS header has a field QEMU's LUKS driver refuses.

The LUKS1 header at the start of the encryption area names the cipher
("aes"), the cipher mode with its IV generator ("xts-plain64", or
"cbc-essiv:sha256") and the hash ("sha256") as NUL-terminated strings in
32-byte fields; its payload starts at payload_offset sectors, after the
4 KiB that hold the header and the key slot table; the master key digest
takes a non-zero PBKDF2 iteration count (the LUKS1 on-disk
format).  Key slot defects are luks-keyslot-bad's, a bad magic or version
luks-bad-magic's.

QEMU: refuses to open the image, even read-only and for `qemu-img info`
(qcrypto_block_luks_check_header and parse_header): "LUKS header cipher
name is not NUL terminated" (and cipher mode, hash spec), "LUKS payload is
overlapping with the header", "LUKS key iteration count is zero",
"Unexpected cipher mode string format 'NAME'", "Cipher mode 'NAME' not
supported", "IV generator 'NAME' not supported", "Hash algorithm 'NAME'
not supported", "Algorithm 'NAME' with key size N bytes not supported".
Repair: none in place; restore the image from a backup (without a readable
LUKS header the data cannot be decrypted).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea
from qcow2lint.rulekit import shown

NAME = "luks-header-bad"
CODE = "Q0409"
SEVERITY = "error"
SCOPE = EncryptionArea
QEMU_REFUSES = (
    "LUKS header cipher name is not NUL terminated",
    "LUKS header cipher mode is not NUL terminated",
    "LUKS header hash spec is not NUL terminated",
    "LUKS payload is overlapping with the header",
    "LUKS key iteration count is zero",
    "Unexpected cipher mode string format 'NAME'",
    "Cipher mode 'NAME' not supported",
    "IV generator 'NAME' not supported",
    "Hash algorithm 'NAME' not supported",
    "Algorithm 'NAME' with key size N bytes not supported",
)
#: The header and key slot table QEMU keeps the payload clear of, in 512-byte sectors.
#: QEMU 7.2's names (QCryptoCipherAlgorithm families, QCryptoCipherMode,
#: QCryptoIVGenAlgorithm, QCryptoHashAlgorithm).
CIPHERS = (b"aes", b"cast5", b"serpent", b"twofish", b"sm4")
MODES = (b"ecb", b"cbc", b"xts", b"ctr")
IV_GENERATORS = (b"plain", b"plain64", b"essiv")
HASHES = (b"md5", b"sha1", b"sha224", b"sha256", b"sha384", b"sha512", b"ripemd160")
STRINGS = {"cipher_name": "cipher name", "cipher_mode": "cipher mode", "hash_spec": "hash spec"}


def check(area, ctx):
    """Flag the LUKS header fields QEMU refuses."""
    luks = area.luks
    if luks is None or ctx.header.crypt_method != spec.CRYPT_LUKS or luks.magic != spec.LUKS_MAGIC:
        return
    at = {name: luks.file_offset + offset for name, offset in spec.LUKS_HEADER_FIELDS.items()}
    for field, what in STRINGS.items():
        if b"\0" not in getattr(luks, field):
            yield Problem(at[field], f"encryption.luks.{field}", f"the LUKS {what} fills its 32 bytes with no NUL")
    if luks.payload_offset < spec.LUKS_HEADER_SECTORS:
        yield Problem(
            at["payload_offset"],
            "encryption.luks.payload_offset",
            f"the LUKS payload starts at sector {luks.payload_offset}, inside the {spec.LUKS_HEADER_SECTORS}-sector LUKS header",
        )
    if luks.mk_digest_iterations == 0:
        yield Problem(
            at["mk_digest_iterations"],
            "encryption.luks.mk_digest_iterations",
            "the LUKS master key digest has 0 PBKDF2 iterations",
        )
    name = luks.cipher_name.split(b"\0", 1)[0]
    if b"\0" in luks.cipher_name and name not in CIPHERS:
        yield Problem(
            at["cipher_name"],
            "encryption.luks.cipher_name",
            f"the LUKS cipher {shown(name)} is not one QEMU supports ({', '.join(c.decode() for c in CIPHERS)})",
        )
    if b"\0" in luks.cipher_mode:
        yield from _mode(luks.cipher_mode.split(b"\0", 1)[0], at["cipher_mode"])
    spec_name = luks.hash_spec.split(b"\0", 1)[0]
    if b"\0" in luks.hash_spec and spec_name not in HASHES:
        yield Problem(
            at["hash_spec"], "encryption.luks.hash_spec", f"the LUKS hash {shown(spec_name)} is not one QEMU supports"
        )


def _mode(mode, offset):
    """Problems of a cipher mode string "mode-ivgen[:hash]", as QEMU parses it."""
    where = "encryption.luks.cipher_mode"
    if b"-" not in mode:
        yield Problem(offset, where, f"the LUKS cipher mode {shown(mode)} is not of the form MODE-IVGEN[:HASH]")
        return
    cipher_mode, ivgen = mode.split(b"-", 1)
    ivgen, _, ivhash = ivgen.partition(b":")
    if cipher_mode not in MODES:
        yield Problem(offset, where, f"the LUKS cipher mode {shown(cipher_mode)} is not one QEMU supports")
    if ivgen not in IV_GENERATORS:
        yield Problem(offset, where, f"the LUKS IV generator {shown(ivgen)} is not one QEMU supports")
    if ivhash and ivhash not in HASHES:
        yield Problem(offset, where, f"the LUKS IV generator hash {shown(ivhash)} is not one QEMU supports")
