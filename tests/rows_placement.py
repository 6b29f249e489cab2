"""Encryption (catalogue §2.4) and table placement (§2.5) rows, run by
tests/test_rule_rows.py (and compared with qemu-img check by
test_differential.py).  QEMU expectations use `qemu-img check`, or
`qemu-img info` where QEMU refuses to open the image.
"""

from __future__ import annotations

import re

import imagebuilder as ib
from harness import QemuExpect, Row, Target
from snapshot_builders import beyond_eof, extension_list, luks_area, luks_slot_offset, rewrite_extensions

MAX_L1_ENTRIES = 0x2000000 // 8  # QCOW_MAX_L1_SIZE / 8
MAX_REFTABLE_BYTES = 0x800000  # QCOW_MAX_REFTABLE_SIZE


# ---------------------------------------------------------------------------
# patch functions: encryption (§2.4)
# ---------------------------------------------------------------------------


def _crypto_ext(img: ib.Qcow2Image) -> ib.Extension:
    return img.extension(ib.EXT_CRYPTO)


def patch_drop_fde_ext(img: ib.Qcow2Image) -> Target:
    """The extension area rewritten without the encryption header pointer."""
    rewrite_extensions(img, [(t, d) for t, d in extension_list(img) if t != ib.EXT_CRYPTO])
    assert img.find_extension(ib.EXT_CRYPTO) is None
    return Target((ib.HEADER_FIELDS["crypt_method"][0],), re.escape("header.crypt_method"))


def patch_crypt_method_none(img: ib.Qcow2Image) -> Target:
    """crypt_method cleared: the pointer extension remains."""
    img.set_header("crypt_method", 0)
    ext = _crypto_ext(img)
    return Target((ext.offset,), rf"extensions\[{ext.index}\]\(crypto-header\)")


def _fde_ext_with_data(size: int):
    def patch(img: ib.Qcow2Image) -> Target:
        exts = [(t, (d + bytes(size))[:size] if t == ib.EXT_CRYPTO else d) for t, d in extension_list(img)]
        rewrite_extensions(img, exts)
        ext = _crypto_ext(img)
        assert ext.length == size
        return Target((ext.offset + 4,), rf"extensions\[{ext.index}\]\(crypto-header\)\.length")

    return patch


def _luks_bytes(relative: int, data: bytes, location: str):
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.write_bytes(luks_area(img)[0] + relative, data)
        return Target((off,), re.escape(location))

    return patch


def patch_fde_area_past_eof(img: ib.Qcow2Image) -> Target:
    """The pointer's length grown by 1 MiB: the area now ends far past EOF."""
    offset, length = luks_area(img)
    assert offset + length <= img.file_size
    img.set_ext_field(ib.EXT_CRYPTO, "length", length + (1 << 20))
    ext = _crypto_ext(img)
    return Target((ext.data_offset,), rf"extensions\[{ext.index}\]\(crypto-header\)\.offset")


def patch_fde_tail(img: ib.Qcow2Image) -> Target:
    """One non-zero byte 0x100 bytes after the used part of the area."""
    offset, length = luks_area(img)
    end = offset + length
    assert end % img.cluster_size, "the recipe's area must end inside a cluster"
    assert img.read_bytes(end, 0x200) == bytes(0x200)
    off = img.write_bytes(end + 0x100, b"\x5a")
    return Target((off,), re.escape("encryption.tail"))


def patch_keyslot_state(img: ib.Qcow2Image) -> Target:
    """Key slot 1 (disabled) gets a state word that is neither value."""
    off = luks_slot_offset(img, 1)
    assert img.read_int(off, "I") == 0x0000DEAD
    img.write_int(off, "I", 0x12345678)
    return Target((off,), re.escape("encryption.luks.key_slots[1].active"))


def patch_keyslot_material(img: ib.Qcow2Image) -> Target:
    """Key slot 0 (enabled) moved so that its key material ends past the area."""
    off = luks_slot_offset(img, 0)
    assert img.read_int(off, "I") == 0x00AC71F3
    _, length = luks_area(img)
    img.write_int(off + 40, "I", length // 512 - 100)
    return Target((off + 40,), re.escape("encryption.luks.key_slots[0].key_material_offset"))


# ---------------------------------------------------------------------------
# patch functions: placement (§2.5)
# ---------------------------------------------------------------------------


def _header_field(name: str, value, location: str | None = None):
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.set_header(name, value(img))
        return Target((off,), location or re.escape(f"header.{name}"))

    return patch


def patch_unchanged_l1_size(img: ib.Qcow2Image) -> Target:
    """No patch: the real shrunk image already has the larger L1 table."""
    assert img.header["l1_size"] == 6
    return Target((ib.HEADER_FIELDS["l1_size"][0],), re.escape("header.l1_size"))


ROWS: list[Row] = [
    # --- encryption --------------------------------------------------------
    Row(
        "luks-missing-fde-ext",
        "luks",
        patch_drop_fde_ext,
        # `qemu-img info` (no key) segfaults on this image in QEMU 7.2; check opens it with the key
        QemuExpect("check", 1, "Missing CRYPTO header for crypt method 2"),
    ),
    Row(
        "fde-ext-without-luks",
        "luks",
        patch_crypt_method_none,
        QemuExpect("info", 1, "CRYPTO header extension only expected with LUKS encryption method"),
    ),
    Row(
        "fde-ext-bad-length",
        "luks",
        _fde_ext_with_data(24),
        QemuExpect("info", 1, "CRYPTO header extension size 24, but expected size 16"),
        "24",
    ),
    Row(
        "fde-ext-bad-length",
        "luks",
        _fde_ext_with_data(8),
        QemuExpect("info", 1, "CRYPTO header extension size 8, but expected size 16"),
        "8",
    ),
    Row(
        "luks-bad-magic",
        "luks",
        _luks_bytes(0, b"LUKX", "encryption.luks.magic"),
        QemuExpect("info", 1, "Volume is not in LUKS format"),
        "magic",
    ),
    Row(
        "luks-bad-magic",
        "luks",
        _luks_bytes(6, b"\x00\x02", "encryption.luks.version"),
        QemuExpect("info", 1, "LUKS version 2 is not supported"),
        "version",
    ),
    Row(
        "fde-area-out-of-file",
        "luks",
        patch_fde_area_past_eof,
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more"),
    ),
    Row("fde-tail-not-zero", "luks", patch_fde_tail, QemuExpect("check", 0)),
    Row(
        "luks-keyslot-bad",
        "luks",
        patch_keyslot_state,
        QemuExpect("info", 1, "Keyslot 1 state (active/disable) is corrupted"),
        "state",
    ),
    Row(
        "luks-keyslot-bad",
        "luks",
        patch_keyslot_material,
        QemuExpect("info", 1, "Keyslot 0 is overlapping with the encrypted payload"),
        "material",
    ),
    # --- placement ---------------------------------------------------------
    Row(
        "l1-too-large",
        "v3",
        _header_field("l1_size", lambda img: MAX_L1_ENTRIES + 1),
        QemuExpect("info", 1, "Active L1 table too large"),
    ),
    Row(
        "l1-too-small",
        "v3",
        _header_field("l1_size", lambda img: 2),
        QemuExpect("info", 1, "L1 table is too small"),
    ),
    Row(
        "l1-larger-than-needed",
        "v3",
        _header_field("l1_size", lambda img: 5),
        QemuExpect("check", 0),
        "patched",
    ),
    Row("l1-larger-than-needed", "shrunk", patch_unchanged_l1_size, QemuExpect("check", 0), "shrunk"),
    Row(
        "l1-out-of-file",
        "v3",
        _header_field("l1_table_offset", beyond_eof),
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more"),
    ),
    Row(
        "reftable-too-large",
        "v3",
        _header_field("refcount_table_clusters", lambda img: MAX_REFTABLE_BYTES // img.cluster_size + 1),
        QemuExpect("info", 1, "Reference count table too large"),
    ),
    Row(
        "reftable-missing",
        "v3",
        _header_field("refcount_table_clusters", lambda img: 0),
        QemuExpect("info", 1, "Image does not contain a reference count table"),
    ),
    Row(
        "reftable-out-of-file",
        "v3",
        _header_field("refcount_table_offset", beyond_eof),
        QemuExpect("check", 2, "exceeding the end of the file by one cluster or more"),
    ),
    Row(
        "snapshot-count-too-large",
        "snapshot",
        _header_field("nb_snapshots", lambda img: 65537),
        QemuExpect("info", 1, "Snapshot table too large"),
    ),
]
