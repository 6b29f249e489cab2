"""Rule rows for the policy rules: external references (backing and data
file names), resource bounds, the LUKS header, and a file cut short.

Most of these rules judge what qemu-img itself writes when asked (a backing
file, a data file, costly LUKS slots): their rows patch nothing, their
``clean_base`` is a plain image, and they run with every rule on (the
``pedantic`` preset of harness.PEDANTIC).  The size bounds are off until a
limit is set: their rows set one.  test_untrusted.py tests the same rules
on hostile images, under the ``untrusted`` preset.
"""

from __future__ import annotations

import re
import struct

import imagebuilder as ib
from harness import QemuExpect, Row, Target, at, refuses

#: LUKS1 header fields (the LUKS1 on-disk format): the master key digest's
#: PBKDF2 iterations, then 8 key slots of 48 bytes from byte 208 (active,
#: iterations, salt, key material offset, stripes).
LUKS_MK_ITERATIONS = 164
LUKS_SLOT0 = 208
LUKS_SLOT_ITERATIONS = 4
LUKS_SLOT_STRIPES = 44


def unchanged(offset: int, location: str):
    """No patch: the base as qemu-img made it has the property."""

    def patch(img: ib.Qcow2Image) -> Target:
        return at(offset, re.escape(location))

    return patch


def backing_name(img: ib.Qcow2Image) -> Target:
    """The backing file name, unchanged."""
    return at(img.header["backing_file_offset"], re.escape("backing_file_name"))


def backing_name_missing(img: ib.Qcow2Image) -> Target:
    """The backing file name's last byte changed: it names no file."""
    offset, size = img.header["backing_file_offset"], img.header["backing_file_size"]
    img.write_bytes(offset + size - 1, b"~")
    return at(offset, re.escape("backing_file_name"))


def backing_format_unknown(img: ib.Qcow2Image) -> Target:
    """The backing format extension retyped as an unknown extension."""
    img.set_ext_header(img.extension(ib.EXT_BACKING_FORMAT).index, type=0x12345678)
    return at(img.header_field_offset("backing_file_offset"), re.escape("header.backing_file_offset"))


def data_file_name(img: ib.Qcow2Image) -> Target:
    """The data file name extension, unchanged."""
    ext = img.extension(ib.EXT_DATA_FILE)
    return at(ext.data_offset, re.escape(f"extensions[{ext.index}](data-file).name"))


def data_file_name_missing(img: ib.Qcow2Image) -> Target:
    """The data file name's last byte changed: it names no file."""
    ext = img.extension(ib.EXT_DATA_FILE)
    img.write_bytes(ext.data_offset + len(ext.data) - 1, b"~")
    return at(ext.data_offset, re.escape(f"extensions[{ext.index}](data-file).name"))


def backing_format_no_driver(img: ib.Qcow2Image) -> Target:
    """The backing format "qcow2" spelled "qCow2": QEMU's driver names are case-sensitive."""
    ext = img.extension(ib.EXT_BACKING_FORMAT)
    img.write_bytes(ext.data_offset, b"qCow2")
    return at(ext.data_offset, re.escape(f"extensions[{ext.index}](backing-format).name"))


def backing_name_protocol(img: ib.Qcow2Image) -> Target:
    """The backing file name's first three bytes made "qq:": a protocol QEMU does not know."""
    offset = img.header["backing_file_offset"]
    img.write_bytes(offset, b"qq:")
    return at(offset, re.escape("backing_file_name"))


def end_marker_past_area(img: ib.Qcow2Image) -> Target:
    """The end-of-extensions marker's length set to 65536: past the extension area."""
    offset = img.header["header_length"]
    while img.read_int(offset, "I"):
        offset += 8 + -(-img.read_int(offset + 4, "I") // 8) * 8
    img.write_int(offset + 4, "I", 0x10000)
    return at(offset + 4, re.escape("extensions.end_marker.length"))


def luks_header(img: ib.Qcow2Image) -> int:
    """Where the LUKS header starts (the full disk encryption extension's offset)."""
    return int(struct.unpack_from(">Q", img.extension(ib.EXT_CRYPTO).data, 0)[0])


def luks_iterations(img: ib.Qcow2Image) -> Target:
    """The iterations qemu-img chose (its default iter-time): above a limit of 1."""
    start = luks_header(img)
    return Target(
        (start + LUKS_MK_ITERATIONS, start + LUKS_SLOT0 + LUKS_SLOT_ITERATIONS),
        r"encryption\.luks\.(mk_digest_iterations|key_slots\[0\]\.iterations)",
    )


def luks_stripes(img: ib.Qcow2Image) -> Target:
    """Key slot 0 with 8000 anti-forensic stripes (QEMU writes 4000)."""
    offset = img.write_int(luks_header(img) + LUKS_SLOT0 + LUKS_SLOT_STRIPES, "I", 8000)
    return at(offset, r"encryption\.luks\.key_slots\[0\]\.stripes")


def luks_digest_iterations_zero(img: ib.Qcow2Image) -> Target:
    """The master key digest with 0 PBKDF2 iterations."""
    offset = img.write_int(luks_header(img) + LUKS_MK_ITERATIONS, "I", 0)
    return at(offset, re.escape("encryption.luks.mk_digest_iterations"))


def cut_in_l1(img: ib.Qcow2Image) -> Target:
    """The file cut 4 bytes into the active L1 table."""
    end = img.header["l1_table_offset"] + 4
    img.truncate(end)
    return at(end, "file")


ROWS: list[Row] = [
    # --- external references ----------------------------------------------------
    Row(
        "backing-file-present",
        "backing",
        unchanged(8, "header.backing_file_offset"),
        QemuExpect("info", 0, '"backing-filename"'),
        clean_base="v3",
    ),
    Row(
        "backing-file-unsafe-name",
        "backing",
        backing_name,
        QemuExpect("info", 0, "backing-base.qcow2"),
        clean_base="v3",
    ),
    Row("backing-file-missing", "backing", backing_name_missing, QemuExpect("check", 1, "Could not open backing file")),
    Row("backing-format-missing", "backing", backing_format_unknown, QemuExpect("info", 0, '"backing-filename"')),
    Row(
        "backing-format-unknown", "backing", backing_format_no_driver, QemuExpect("check", 1, "Unknown driver 'qCow2'")
    ),
    Row("backing-protocol-unknown", "backing", backing_name_protocol, QemuExpect("check", 1, "Unknown protocol 'qq'")),
    Row("data-file-missing", "hdr-data-file", data_file_name_missing, QemuExpect("check", 1, "Could not open")),
    Row("ext-end-marker-length", "v3", end_marker_past_area, refuses("Header extension too large")),
    Row(
        "data-file-present",
        "hdr-data-file",
        unchanged(0x48, "header.incompatible_features"),
        QemuExpect("info", 0, '"data-file"'),
        clean_base="v3",
    ),
    Row(
        "data-file-unsafe-name", "hdr-data-file", data_file_name, QemuExpect("info", 0, '"data-file"'), clean_base="v3"
    ),
    # --- resource bounds (off until a limit is set) -----------------------------
    Row(
        "virtual-size-too-large",
        "v3",
        unchanged(0x18, "header.size"),
        config="rules:\n  virtual-size-too-large: {max-virtual-size: 1}\n",
    ),
    Row(
        "open-metadata-too-large",
        "v3",
        unchanged(0, "image"),
        config="rules:\n  open-metadata-too-large: {max-open-metadata: 1}\n",
    ),
    # --- the LUKS header --------------------------------------------------------
    Row(
        "luks-iterations-too-high",
        "luks",
        luks_iterations,
        count=None,
        config="rules:\n  luks-iterations-too-high: {max-iterations: 1}\n",
    ),
    Row("luks-params-unusual", "luks", luks_stripes, refuses("Keyslot 0 is corrupted (stripes 8000 != 4000)")),
    Row("luks-header-bad", "luks", luks_digest_iterations_zero, refuses("LUKS key iteration count is zero")),
    # --- the file ---------------------------------------------------------------
    Row("file-truncated", "v3", cut_in_l1),
]
