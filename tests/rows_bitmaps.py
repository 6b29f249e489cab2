"""Bitmap rows (catalogue §2.14), run by tests/test_rule_rows.py (and
compared with qemu-img check by test_differential.py).

Each row patches a copy of a real image made by qemu-img / qemu-io so that
it has exactly one bitmap defect, and names what QEMU says about it: it
refuses the image (``qemu-img info``), or ``qemu-img check`` reports it, or
QEMU is silent.  The bitmaps base (baseimages.py) has bm0 (granularity 512,
table of 8 entries, data in table[0] and table[2]) and bm1 (granularity
64 KiB, one all-zero entry); its directory is the last 64 bytes of the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import imagebuilder as ib
from baseimages import BITMAP_TABLE_INDEX, CLUSTER, TAIL_LAST_BYTE
from harness import QemuExpect, Row, Target, at, refuses

AUTOCLEAR_BITMAPS = 1
IN_USE, AUTO, EXTRA_DATA_COMPATIBLE = 1, 2, 4

MY_RULES = (
    "bitmaps-ext-bad-length",
    "bitmaps-ext-zero-bitmaps",
    "bitmaps-ext-too-many",
    "bitmap-dir-too-large",
    "bitmap-dir-size-zero",
    "bitmap-dir-size-mismatch",
    "bitmap-count-mismatch",
    "bitmap-dir-out-of-file",
    "autoclear-bitmaps-without-ext",
    "bitmaps-ext-without-autoclear",
    "bitmaps-in-v2",
    "bitmap-name-empty",
    "bitmap-name-too-long",
    "bitmap-name-duplicate",
    "bitmap-type-invalid",
    "bitmap-granularity-range",
    "bitmap-flag-extra-data-compatible",
    "bitmap-extra-data",
    "bitmap-table-offset-zero",
    "bitmap-table-size-zero",
    "bitmap-table-size-too-large",
    "bitmap-table-size-wrong",
    "bitmap-table-out-of-file",
    "bitmap-data-out-of-file",
    "bitmap-tail-bits-nonzero",
    "bitmap-in-use",
    "bitmap-data-shared",
)


CONSTRAINTS = "doesn't satisfy the constraints"
EOF_CORRUPTION = QemuExpect("check", 2, "exceeding the end of the file by one cluster or more")


def _ext(img: ib.Qcow2Image, name: str, value: int) -> Target:
    ext = img.extension(ib.EXT_BITMAPS)
    off = img.set_ext_field(ib.EXT_BITMAPS, name, value)
    return at(off, re.escape(f"extensions[{ext.index}](bitmaps).{name}"))


def ext_field(name: str, change: Callable[[int], int]) -> Callable[[ib.Qcow2Image], Target]:
    """Set a bitmaps extension field to ``change(current value)``."""

    def patch(img: ib.Qcow2Image) -> Target:
        current = img.read_int(img.ext_field_offset(ib.EXT_BITMAPS, name), ib.EXT_FIELDS[ib.EXT_BITMAPS][name][1])
        return _ext(img, name, change(current))

    return patch


def ext_length(length: int) -> Callable[[ib.Qcow2Image], Target]:
    """Set the bitmaps extension's length word."""

    def patch(img: ib.Qcow2Image) -> Target:
        ext = img.extension(ib.EXT_BITMAPS)
        return at(
            img.set_ext_header(ext.index, length=length) + 4, re.escape(f"extensions[{ext.index}](bitmaps).length")
        )

    return patch


def _entry_target(img: ib.Qcow2Image, which: int, name: str, location_name: str | None = None) -> Target:
    entry = img.bitmap(which)
    label = location_name if location_name is not None else entry.name.decode()
    return at(img.bitmap_field_offset(which, name), re.escape(f"bitmaps[{which}]({label}).{name}"))


def entry_field(which: int, name: str, change: Callable[[int], int], **also: int) -> Callable[[ib.Qcow2Image], Target]:
    """Set a field of bitmap directory entry ``which`` (and the fields in ``also``)."""

    def patch(img: ib.Qcow2Image) -> Target:
        for other, value in also.items():
            img.set_bitmap_field(which, other, value)
        target = _entry_target(img, which, name)
        img.set_bitmap_field(which, name, change(img.bitmap(which).fields[name]))
        return target

    return patch


def past_eof(img: ib.Qcow2Image) -> int:
    """A cluster-aligned offset well past the end of the file."""
    return (img.file_size + CLUSTER - 1) // CLUSTER * CLUSTER + 16 * CLUSTER


def patch_dir_out_of_file(img: ib.Qcow2Image) -> Target:
    """The directory moved 16 clusters past the end of the file."""
    return _ext(img, "bitmap_directory_offset", past_eof(img))


def patch_autoclear_without_ext(img: ib.Qcow2Image) -> Target:
    """Autoclear bit 0 in an image without bitmaps."""
    assert img.find_extension(ib.EXT_BITMAPS) is None
    off = img.set_header("autoclear_features", img.header["autoclear_features"] | AUTOCLEAR_BITMAPS)
    return at(off, re.escape("header.autoclear_features"))


def patch_ext_without_autoclear(img: ib.Qcow2Image) -> Target:
    """Autoclear bit 0 cleared in an image with bitmaps."""
    assert img.header["autoclear_features"] & AUTOCLEAR_BITMAPS
    off = img.set_header("autoclear_features", img.header["autoclear_features"] & ~AUTOCLEAR_BITMAPS)
    return at(off, re.escape("header.autoclear_features"))


def downgrade_to_v2(img: ib.Qcow2Image) -> ib.Qcow2Image:
    """Turn the v3 bitmaps image into a v2 one: version 2, and the extension
    area moved from header_length (112) to byte 72, where v2 has it (the
    image uses 16-bit refcounts and zlib, v2's only choices)."""
    assert img.header["refcount_order"] == 4 and img.header["incompatible_features"] == 0
    start = img.header_length
    last = img.extensions[-1]
    end = last.offset + 8 + (last.length + 7) // 8 * 8 + 8  # with the end marker
    area = img.read_bytes(start, end - start)
    img.write_bytes(ib.HEADER_FIELDS["incompatible_features"][0], area + bytes(start - 72))
    img.set_header("version", 2)
    return ib.Qcow2Image(img.path)


def patch_bitmaps_in_v2(img: ib.Qcow2Image) -> Target:
    """A v2 image that has a bitmaps extension."""
    v2 = downgrade_to_v2(img)
    ext = v2.extension(ib.EXT_BITMAPS)
    return at(ext.offset, re.escape(f"extensions[{ext.index}](bitmaps)"))


def _resize_dir(img: ib.Qcow2Image, delta: int) -> None:
    ext = img.extension(ib.EXT_BITMAPS)
    size = img.read_int(ext.data_offset + 8, "Q")
    img.set_ext_field(ib.EXT_BITMAPS, "bitmap_directory_size", size + delta)


def patch_name_empty(img: ib.Qcow2Image) -> Target:
    """bm1 (the last entry) gets name_size 0; its entry shrinks from 32 to
    24 bytes, so the directory size shrinks with it."""
    target = _entry_target(img, 1, "name_size", location_name="")
    img.set_bitmap_field(1, "name_size", 0)
    _resize_dir(img, -8)
    return target


def patch_name_too_long(img: ib.Qcow2Image) -> Target:
    """bm1 gets a 1024-byte name ('bm1xxx...'); the directory grows to fit."""
    entry = img.bitmap(1)
    name = "bm1" + "x" * (1024 - 3)
    # Structure paths show the first 64 bytes of a long name, then how many more.
    shown = f"{name[:64]}...(+{len(name) - 64} bytes)"
    target = at(img.bitmap_field_offset(1, "name_size"), re.escape(f"bitmaps[1]({shown}).name_size"))
    img.write_bytes(entry.padding_offset, name[3:].encode())
    img.set_bitmap_field(1, "name_size", 1024)
    _resize_dir(img, 24 + 1024 - entry.size)
    return target


def patch_name_duplicate(in_use: bool = False) -> Callable[[ib.Qcow2Image], Target]:
    """bm1 renamed to bm0 (optionally in_use too)."""

    def patch(img: ib.Qcow2Image) -> Target:
        entry = img.bitmap(1)
        name_at = entry.offset + ib.BITMAP_DIR_FIXED + entry.fields["extra_data_size"]
        img.write_bytes(name_at, b"bm0")
        if in_use:
            img.set_bitmap_field(1, "flags", entry.fields["flags"] | IN_USE)
        return at(name_at, re.escape("bitmaps[1](bm0).name"))

    return patch


def patch_extra_data(flags: int = 0) -> Callable[[ib.Qcow2Image], Target]:
    """bm1 gets 8 bytes of extra data before its name (and ``flags`` set);
    the entry and the directory grow by 8 bytes."""

    def patch(img: ib.Qcow2Image) -> Target:
        entry = img.bitmap(1)
        tail = img.read_bytes(entry.offset + ib.BITMAP_DIR_FIXED, entry.size - ib.BITMAP_DIR_FIXED)
        img.write_bytes(entry.offset + ib.BITMAP_DIR_FIXED, bytes(8) + tail)
        img.set_bitmap_field(1, "flags", entry.fields["flags"] | flags)
        _resize_dir(img, 8)
        target = _entry_target(img, 1, "extra_data_size")
        img.set_bitmap_field(1, "extra_data_size", 8)
        return target

    return patch


def patch_table_out_of_file(img: ib.Qcow2Image) -> Target:
    """bm1's table moved 16 clusters past the end of the file."""
    target = _entry_target(img, 1, "bitmap_table_offset")
    img.set_bitmap_field(1, "bitmap_table_offset", past_eof(img))
    return target


def patch_data_out_of_file(img: ib.Qcow2Image) -> Target:
    """bm0.table[2] points 16 clusters past the end of the file."""
    assert img.bitmap(0).table[BITMAP_TABLE_INDEX] & ib.BME_TABLE_OFFSET_MASK
    off = img.set_bitmap_table(0, BITMAP_TABLE_INDEX, past_eof(img))
    return at(off, re.escape(f"bitmaps[0](bm0).table[{BITMAP_TABLE_INDEX}]"))


def patch_data_shared(img: ib.Qcow2Image) -> Target:
    """bm0.table[2] points at the active L1 table's cluster: bitmap data and
    the L1 table claim the same cluster."""
    l1 = img.header["l1_table_offset"]
    assert l1 % CLUSTER == 0 and img.bitmap(0).table[BITMAP_TABLE_INDEX] & ib.BME_TABLE_OFFSET_MASK
    img.set_bitmap_table(0, BITMAP_TABLE_INDEX, l1)
    return at(l1, re.escape(f"bitmaps[0](bm0).table.data@{l1:#x}"))


def patch_tail_bits(byte: int, bits: int) -> Callable[[ib.Qcow2Image], Target]:
    """Set ``bits`` in byte ``byte`` of the tail bitmap's only data cluster."""

    def patch(img: ib.Qcow2Image) -> Target:
        data = img.bitmap(0).table[0] & ib.BME_TABLE_OFFSET_MASK
        assert data, "recipe must serialize table[0]"
        old = img.read_bytes(data + byte, 1)[0]
        img.write_bytes(data + byte, bytes([old | bits]))
        return at(data + byte, re.escape("bitmaps[0](tail).table[0].data"))

    return patch


ROWS: list[Row] = [
    # --- the bitmaps extension ---------------------------------------------
    Row(
        "bitmaps-ext-bad-length",
        "bitmaps",
        ext_length(16),
        refuses("bitmaps_ext: Invalid extension length"),
        "16",
    ),
    Row(
        "bitmaps-ext-bad-length",
        "bitmaps",
        ext_length(32),
        refuses("bitmaps_ext: Invalid extension length"),
        "32",
    ),
    Row(
        "bitmaps-ext-zero-bitmaps",
        "bitmaps",
        ext_field("nb_bitmaps", lambda v: 0),
        refuses("found bitmaps extension with zero bitmaps"),
    ),
    Row(
        "bitmaps-ext-too-many",
        "bitmaps",
        ext_field("nb_bitmaps", lambda v: 65536),
        refuses("Image has 65536 bitmaps, exceeding the QEMU supported maximum of 65535"),
    ),
    Row(
        "bitmap-dir-too-large",
        "bitmaps",
        ext_field("bitmap_directory_size", lambda v: 67107841),
        refuses("bitmap directory size (67107841) exceeds the maximum supported size (67107840)"),
    ),
    Row(
        "bitmap-dir-size-zero",
        "bitmaps",
        ext_field("bitmap_directory_size", lambda v: 0),
        refuses("Requested bitmap directory size is zero"),
    ),
    Row(
        "bitmap-dir-size-mismatch",
        "bitmaps",
        ext_field("bitmap_directory_size", lambda v: v + 8),
        refuses("Broken bitmap directory"),
        "slack",
    ),
    Row(
        "bitmap-dir-size-mismatch",
        "bitmaps",
        ext_field("bitmap_directory_size", lambda v: v - 16),
        refuses("Broken bitmap directory"),
        "entry-crosses-end",
    ),
    Row(
        "bitmap-count-mismatch",
        "bitmaps",
        ext_field("nb_bitmaps", lambda v: v - 1),
        refuses("More bitmaps found than specified in header extension"),
        "more",
    ),
    Row(
        "bitmap-count-mismatch",
        "bitmaps",
        ext_field("nb_bitmaps", lambda v: v + 1),
        refuses("Less bitmaps found than specified in header extension"),
        "less",
    ),
    Row(
        "bitmap-dir-out-of-file",
        "bitmaps",
        patch_dir_out_of_file,
        refuses("Bitmap '' doesn't satisfy the constraints"),
    ),
    # --- header and version --------------------------------------------------
    Row(
        "autoclear-bitmaps-without-ext",
        "v3",
        patch_autoclear_without_ext,
        (
            QemuExpect("check", 0, "No errors were found"),
            QemuExpect(
                "write",
                None,
                "Preventing invalid write on metadata (overlaps with bitmap directory)",
                "write -P 0x5a 0 64k",
            ),
        ),
    ),
    Row(
        "bitmaps-ext-without-autoclear",
        "bitmaps",
        patch_ext_without_autoclear,
        QemuExpect("info", 0, "a program lacking bitmap support modified this file"),
    ),
    Row(
        "bitmaps-in-v2",
        "bitmaps",
        patch_bitmaps_in_v2,
        QemuExpect("info", 0, "This qcow2 v2 image contains bitmaps"),
    ),
    # --- directory entries ---------------------------------------------------
    Row("bitmap-name-empty", "bitmaps", patch_name_empty, QemuExpect("info", 0, '"name": ""')),
    Row("bitmap-name-too-long", "bitmaps", patch_name_too_long, refuses(CONSTRAINTS)),
    Row("bitmap-name-duplicate", "bitmaps", patch_name_duplicate(), refuses("Bitmap already exists: bm0")),
    Row(
        "bitmap-name-duplicate",
        "bitmaps",
        patch_name_duplicate(in_use=True),
        QemuExpect("info", 0, '"name": "bm0"'),
        "in-use-skipped-by-qemu",
    ),
    Row(
        "bitmap-type-invalid",
        "bitmaps",
        entry_field(1, "type", lambda v: 2),
        refuses("Bitmap 'bm1' doesn't satisfy the constraints"),
        "2",
    ),
    Row(
        "bitmap-type-invalid",
        "bitmaps",
        entry_field(0, "type", lambda v: 0),
        refuses("Bitmap 'bm0' doesn't satisfy the constraints"),
        "0",
    ),
    Row(
        "bitmap-granularity-range",
        "bitmaps",
        entry_field(1, "granularity_bits", lambda v: 32),
        refuses(CONSTRAINTS),
        "32",
    ),
    Row(
        "bitmap-granularity-range",
        "bitmaps",
        entry_field(1, "granularity_bits", lambda v: 8),
        refuses(CONSTRAINTS),
        "8",
    ),
    Row(
        "bitmap-granularity-range",
        "bitmaps",
        entry_field(1, "granularity_bits", lambda v: 64),
        refuses(CONSTRAINTS),
        "64-spec-reading",
        config="rules:\n  bitmap-granularity-range: {reading: spec}\n",
    ),
    Row(
        "bitmap-flag-extra-data-compatible",
        "bitmaps",
        entry_field(1, "flags", lambda v: v | EXTRA_DATA_COMPATIBLE),
        refuses(CONSTRAINTS),
    ),
    Row("bitmap-extra-data", "bitmaps", patch_extra_data(), refuses("Bitmap extra data is not supported")),
    Row(
        "bitmap-extra-data",
        "bitmaps",
        patch_extra_data(),
        refuses("Bitmap extra data is not supported"),
        "spec-reading-without-flag",
        config="rules:\n  bitmap-extra-data: {reading: spec}\n",
    ),
    Row(
        "bitmap-table-offset-zero",
        "bitmaps",
        entry_field(1, "bitmap_table_offset", lambda v: 0),
        refuses(CONSTRAINTS),
    ),
    Row(
        "bitmap-table-size-zero",
        "bitmaps",
        entry_field(1, "bitmap_table_size", lambda v: 0),
        refuses(CONSTRAINTS),
    ),
    Row(
        "bitmap-table-size-too-large",
        "bitmaps",
        entry_field(1, "bitmap_table_size", lambda v: 0x8000001),
        refuses(CONSTRAINTS),
        "entries",
    ),
    Row(
        "bitmap-table-size-too-large",
        "bitmaps",
        entry_field(1, "bitmap_table_size", lambda v: 0x20000000 // CLUSTER + 1),
        refuses(CONSTRAINTS),
        "bytes",
    ),
    Row(
        "bitmap-table-size-wrong",
        "bitmaps",
        entry_field(0, "bitmap_table_size", lambda v: v - 1),
        refuses("Bitmap 'bm0' doesn't satisfy the constraints"),
        "too-small",
    ),
    Row(
        "bitmap-table-size-wrong",
        "bitmaps",
        entry_field(0, "bitmap_table_size", lambda v: v + 1),
        refuses("Could not read bitmap 'bm0' from image: Invalid argument"),
        "too-big",
    ),
    # QEMU ignores the size of an in_use bitmap; in-use: report judges it anyway.
    Row(
        "bitmap-table-size-wrong",
        "bitmaps",
        entry_field(0, "bitmap_table_size", lambda v: v - 1, flags=AUTO | IN_USE),
        QemuExpect("info", 0, '"in-use"'),
        "in-use-report",
        config="rules:\n  bitmap-table-size-wrong: {in-use: report}\n",
    ),
    Row("bitmap-table-out-of-file", "bitmaps", patch_table_out_of_file, EOF_CORRUPTION),
    Row("bitmap-data-out-of-file", "bitmaps", patch_data_out_of_file, EOF_CORRUPTION),
    Row(
        "bitmap-tail-bits-nonzero",
        "bitmaps-tail",
        patch_tail_bits(TAIL_LAST_BYTE, 0x08),
        QemuExpect("check", 0, "No errors were found"),
        "first-tail-bit",
    ),
    Row(
        "bitmap-tail-bits-nonzero",
        "bitmaps-tail",
        patch_tail_bits(CLUSTER - 1, 0x80),
        QemuExpect("check", 0, "No errors were found"),
        "last-byte-of-cluster",
    ),
    Row(
        "bitmap-in-use",
        "bitmaps",
        entry_field(1, "flags", lambda v: v | IN_USE),
        QemuExpect("info", 0, '"in-use"'),
    ),
    # qemu-img check sees the aliasing only as a refcount mismatch on the L1 cluster.
    Row("bitmap-data-shared", "bitmaps", patch_data_shared, QemuExpect("check", 2, "reference=2")),
]
