"""Header (catalogue §2.1), feature bit (§2.2), header extension and backing
file name (§2.3) and file-level (§2.15) rows, run by tests/test_rule_rows.py
(and compared with qemu-img check by test_differential.py).

Each row patches a real qemu-img image to have one defect and names what
QEMU does: ``qemu-img info`` (open, no I/O, no backing file), ``check``, or
a read-write ``qemu-io`` open (``rw``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

import imagebuilder as ib
from harness import QemuExpect, Row, Target

KIB = 1024
MIB = 1 << 20
CLUSTER = 64 * KIB

#: Every rule this file tests (their codes, severities and scopes are the registry's).
RULES = (
    "header-crypt-method-unknown",
    "header-crypt-aes-deprecated",
    "header-length-too-small",
    "header-length-too-large",
    "header-unknown-fields-nonzero",
    "header-size-unaligned",
    "header-size-too-big",
    "header-v2-has-v3-bytes",
    "dirty-bit-set",
    "dirty-without-lazy-refcounts",
    "corrupt-bit-set",
    "compression-type-unknown",
    "compression-type-without-bit",
    "compression-bit-without-type",
    "compression-type-ignored-short-header",
    "extl2-cluster-too-small",
    "data-file-bit-without-file",
    "data-file-raw-without-data-file",
    "data-file-raw-with-backing",
    "data-file-name-without-bit",
    "refcount-order-too-large",
    "ext-overruns-area",
    "ext-duplicate",
    "ext-no-end-marker",
    "ext-order",
    "ext-unknown-type",
    "backing-format-too-long",
    "backing-format-without-backing",
    "feature-table-bad-length",
    "feature-table-bad-entry",
    "backing-offset-out-of-cluster",
    "backing-name-too-long",
    "backing-name-overlaps-header",
    "backing-name-empty",
    "file-trailing-partial-cluster",
)


#: The clean bases the rows patch (the clean-image test lints them all).
BASE_NAMES = (
    "v3",
    "v2",
    "backing",
    "backing-v2",
    "backing-v2-raw",
    "lazy",
    "small-cluster",
    "hdr-data-file",
    "hdr-data-file-raw",
)


def header_at(name: str) -> int:
    """Byte offset of a header field."""
    return ib.HEADER_FIELDS[name][0]


def _field(name: str, value: Callable[[int], int], location: str | None = None):
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.set_header(name, value(img.header[name]))
        return Target((off,), location or re.escape(f"header.{name}"))

    return patch


def _fields(changes: dict[str, Callable[[int], int]], target: str):
    """Several header fields changed; the finding points at ``target``."""

    def patch(img: ib.Qcow2Image) -> Target:
        for name, value in changes.items():
            img.set_header(name, value(img.header[name]))
        return Target((header_at(target),), re.escape(f"header.{target}"))

    return patch


@dataclass
class Area:
    """Where :func:`rewrite_area` put things."""

    extensions: list[int]
    end_marker: int | None
    name: int | None


def extension_list(img: ib.Qcow2Image) -> list[tuple[int, bytes]]:
    """The image's extensions as (type, data) pairs."""
    return [(e.type, e.data) for e in img.extensions]


def rewrite_area(
    img: ib.Qcow2Image, extensions: list[tuple[int, bytes]], *, marker: bool = True, start: int | None = None
) -> Area:
    """Rewrite cluster 0 from ``start`` (default header_length): the given
    extensions (padded to 8), an end marker unless ``marker`` is false, then
    the backing file name (if any, backing_file_offset updated); the rest of
    cluster 0 is zeroed, as QEMU leaves it."""
    start = img.header_length if start is None else start
    offset, size = img.header["backing_file_offset"], img.header["backing_file_size"]
    name = img.read_bytes(offset, size) if offset else None
    body, offsets = b"", []
    for ext_type, data in extensions:
        offsets.append(start + len(body))
        body += struct.pack(">II", ext_type, len(data)) + data + bytes(-len(data) % 8)
    marker_at = start + len(body) if marker else None
    body += bytes(8) if marker else b""
    name_at = start + len(body)
    if name is not None:
        body += name
        img.set_header("backing_file_offset", name_at)
    img.write_bytes(start, body + bytes(img.cluster_size - start - len(body)))
    return Area(offsets, marker_at, name_at if name is not None else None)


def end_marker_offset(img: ib.Qcow2Image) -> int:
    """Offset of the end marker after the image's extensions."""
    last = img.extensions[-1]
    return last.offset + 8 + (last.length + 7) // 8 * 8


# --- §2.1 header ---------------------------------------------------------------


def patch_unknown_fields(img: ib.Qcow2Image) -> Target:
    """header_length 120: the extension area moved to 120, and byte 115 of
    the unknown header fields at 112..119 set."""
    rewrite_area(img, extension_list(img), start=120)
    img.write_bytes(112, b"\0\0\0\x07" + bytes(4))
    img.set_header("header_length", 120)
    return Target((115,), re.escape("header.unknown_fields"))


def patch_v2_v3_bytes(img: ib.Qcow2Image) -> Target:
    """A v2 image whose bytes 72..111 hold v3 fields (features 0,
    refcount_order 4, header_length 112) as if only the version had been
    changed from 3 to 2."""
    assert img.version == 2 and not img.extensions
    img.write_bytes(72, struct.pack(">QQQII", 0, 0, 0, 4, 112) + bytes(8))
    return Target((72,), re.escape("header.v3_fields_on_disk"))


# --- §2.2 feature bits --------------------------------------------------------


def patch_compression_byte(value: int, incompat: int = 0):
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.set_header("compression_type", value)
        if incompat:
            img.set_header("incompatible_features", img.header["incompatible_features"] | incompat)
        return Target((off,), re.escape("header.compression_type"))

    return patch


def patch_bit3_short_header(img: ib.Qcow2Image) -> Target:
    """header_length 104 (extensions moved to 104: no compression type
    field) with incompatible bit 3 set."""
    rewrite_area(img, extension_list(img), start=104)
    img.set_header("header_length", 104)
    off = img.set_header("incompatible_features", img.header["incompatible_features"] | 0x8)
    return Target((off,), re.escape("header.incompatible_features"))


def patch_ignored_compression_type(img: ib.Qcow2Image) -> Target:
    """header_length 104 with byte 104 = 1 (zstd), as the catalogue tested:
    the 8 bytes at 104 become an unknown "extension" 0x01000000 of length 0
    and the feature table at 112 is still found."""
    img.set_header("header_length", 104)
    off = img.set_header("compression_type", 1)
    return Target((off,), re.escape("header.compression_type"))


def patch_data_file_name_without_bit(img: ib.Qcow2Image) -> Target:
    """Incompatible bit 2 cleared in an image with an external data file."""
    ext = img.extension(ib.EXT_DATA_FILE)
    img.set_header("incompatible_features", img.header["incompatible_features"] & ~0x4)
    return Target((ext.offset,), re.escape(f"extensions[{ext.index}](data-file)"))


def add_backing_name(img: ib.Qcow2Image, name: bytes) -> int:
    """Store ``name`` right after the end marker and point the header at it."""
    at = end_marker_offset(img) + 8
    img.write_bytes(at, name)
    img.set_header("backing_file_offset", at)
    img.set_header("backing_file_size", len(name))
    return at


def patch_raw_with_backing(img: ib.Qcow2Image) -> Target:
    """A backing file name added to a data-file-raw image."""
    assert img.header["autoclear_features"] & 0x2
    backing = img.path.with_name(img.path.name + ".backing.raw")  # an existing file QEMU can open
    backing.write_bytes(bytes(1 << 20))
    add_backing_name(img, str(backing).encode())
    return Target((header_at("autoclear_features"),), re.escape("header.autoclear_features"))


# --- §2.3 extensions and backing name --------------------------------------


def _ext_length(ext_type: int, change: Callable[[int], int]):
    def patch(img: ib.Qcow2Image) -> Target:
        ext = img.extension(ext_type)
        off = img.set_ext_header(ext.index, length=change(ext.length)) + 4
        return Target((off,), re.escape(f"extensions[{ext.index}]({_SLUGS[ext_type]}).length"))

    return patch


_SLUGS = {ib.EXT_FEATURE_TABLE: "feature-table", ib.EXT_BACKING_FORMAT: "backing-format", ib.EXT_BITMAPS: "bitmaps"}


def patch_marker_into_name(img: ib.Qcow2Image) -> Target:
    """backing_file_offset moved 4 bytes into the end marker."""
    marker = end_marker_offset(img)
    img.set_header("backing_file_offset", marker + 4)
    return Target((marker,), re.escape("extensions.end_marker"))


def patch_duplicate_backing_format(img: ib.Qcow2Image) -> Target:
    """Backing format "raw", then "qcow2" (QEMU uses the last), then the feature table."""
    table = img.extension(ib.EXT_FEATURE_TABLE).data
    area = rewrite_area(
        img, [(ib.EXT_BACKING_FORMAT, b"raw"), (ib.EXT_BACKING_FORMAT, b"qcow2"), (ib.EXT_FEATURE_TABLE, table)]
    )
    return Target((area.extensions[1],), re.escape("extensions[1](backing-format)"))


def patch_no_end_marker(img: ib.Qcow2Image) -> Target:
    """The end marker dropped: the backing file name follows the last extension."""
    area = rewrite_area(img, extension_list(img), marker=False)
    assert area.name is not None, "the base must have a backing file name"
    return Target((area.name,), re.escape("extensions"))


def patch_swap_extensions(img: ib.Qcow2Image) -> Target:
    """Feature table first, backing format second."""
    assert [t for t, _ in extension_list(img)] == [ib.EXT_BACKING_FORMAT, ib.EXT_FEATURE_TABLE]
    area = rewrite_area(img, extension_list(img)[::-1])
    return Target((area.extensions[1],), re.escape("extensions[1](backing-format)"))


def patch_unknown_extension(img: ib.Qcow2Image) -> Target:
    """An unknown extension appended after the feature table."""
    off = img.add_extension(0x12345678, b"hello")
    return Target((off,), re.escape(f"extensions[{len(img.extensions) - 1}](0x12345678)"))


def patch_long_backing_format(img: ib.Qcow2Image) -> Target:
    """A 16-byte backing format name."""
    exts = [
        (ib.EXT_BACKING_FORMAT, b"qcow2-extralong!") if t == ib.EXT_BACKING_FORMAT else (t, d)
        for t, d in extension_list(img)
    ]
    area = rewrite_area(img, exts)
    return Target((area.extensions[0] + 4,), re.escape("extensions[0](backing-format).length"))


def patch_drop_backing(img: ib.Qcow2Image) -> Target:
    """backing_file_offset and size zeroed, the backing format extension kept."""
    ext = img.extension(ib.EXT_BACKING_FORMAT)
    img.set_header("backing_file_offset", 0)
    img.set_header("backing_file_size", 0)
    return Target((ext.offset,), re.escape(f"extensions[{ext.index}](backing-format)"))


def _feature_entry(index: int, field_offset: int, value: int, field: str):
    def patch(img: ib.Qcow2Image) -> Target:
        ext = img.extension(ib.EXT_FEATURE_TABLE)
        off = img.write_int(ext.data_offset + 48 * index + field_offset, "B", value)
        return Target((off,), re.escape(f"extensions[{ext.index}](feature-table).entries[{index}].{field}"))

    return patch


def patch_name_in_extensions(img: ib.Qcow2Image) -> Target:
    """backing_file_offset pointing into the feature table's data."""
    ext = img.extension(ib.EXT_FEATURE_TABLE)
    off = img.set_header("backing_file_offset", ext.data_offset + 48)
    return Target((off,), re.escape("header.backing_file_offset"))


# --- §2.15 file level -----------------------------------------------------------


def patch_partial_cluster(img: ib.Qcow2Image) -> Target:
    """512 bytes appended to a file that ends on a cluster boundary."""
    size = img.file_size
    assert size % img.cluster_size == 0
    img.truncate(size + 512)
    return Target((size,), re.escape("file"))


def _bits(field: str, bits: int):
    return _field(field, lambda v: v | bits)


ROWS: list[Row] = [
    # --- §2.1 header ------------------------------------------------------------
    Row(
        "header-crypt-method-unknown",
        "v3",
        _field("crypt_method", lambda v: 3),
        QemuExpect("info", 1, "Unsupported encryption method 3"),
    ),
    Row(
        "header-crypt-aes-deprecated",
        "v3",
        _field("crypt_method", lambda v: 1),
        QemuExpect("check", 1, "Parameter 'encrypt.key-secret' is required for cipher"),
    ),
    Row(
        "header-length-too-small",
        "v3",
        _field("header_length", lambda v: 100),
        QemuExpect("info", 1, "qcow2 header too short"),
    ),
    Row(
        "header-length-too-large",
        "v3",
        _field("header_length", lambda v: CLUSTER + 8),
        QemuExpect("info", 1, "qcow2 header exceeds cluster size"),
    ),
    Row("header-unknown-fields-nonzero", "v3", patch_unknown_fields, QemuExpect("check", 0)),
    Row(
        "header-size-unaligned",
        "v3",
        _field("size", lambda v: v - 1),
        QemuExpect("info", 0, '"virtual-size": 2147483136'),
    ),
    Row("header-size-too-big", "v3", _field("size", lambda v: 1 << 61), QemuExpect("info", 1, "Image is too big")),
    Row(
        "header-size-too-big",
        "small-cluster",
        _field("size", lambda v: 1 << 52),
        QemuExpect("info", 1, "Image is too big"),
        "4k-clusters",
    ),
    Row("header-v2-has-v3-bytes", "v2", patch_v2_v3_bytes, QemuExpect("check", 0)),
    # --- §2.2 feature bits --------------------------------------------------------
    # One dirty bit, one finding: dirty-bit-set with lazy refcounts, else
    # dirty-without-lazy-refcounts.
    Row(
        "dirty-bit-set",
        "lazy",
        _bits("incompatible_features", 0x1),
        QemuExpect("info", 0, '"dirty-flag": true'),
        absent=("dirty-without-lazy-refcounts",),
    ),
    Row(
        "dirty-without-lazy-refcounts",
        "v3",
        _bits("incompatible_features", 0x1),
        QemuExpect("check", 0),
        absent=("dirty-bit-set",),
    ),
    Row(
        "corrupt-bit-set",
        "v3",
        _bits("incompatible_features", 0x2),
        QemuExpect("rw", 1, "qcow2: Image is corrupt; cannot be opened read/write"),
    ),
    Row(
        "corrupt-bit-set",
        "v3",
        _bits("incompatible_features", 0x2),
        QemuExpect("check", 0, "No errors"),
        "check-is-silent",
    ),
    Row(
        "compression-type-unknown",
        "v3",
        patch_compression_byte(7, incompat=0x8),
        QemuExpect("info", 1, "qcow2: unknown compression type: 7"),
    ),
    Row(
        "compression-type-without-bit",
        "v3",
        patch_compression_byte(1),
        QemuExpect("info", 1, "qcow2: Compression type incompatible feature bit must be set"),
    ),
    Row(
        "compression-bit-without-type",
        "v3",
        _bits("incompatible_features", 0x8),
        QemuExpect("info", 1, "qcow2: Compression type incompatible feature bit must not be set"),
    ),
    Row(
        "compression-bit-without-type",
        "v3",
        patch_bit3_short_header,
        QemuExpect("info", 1, "qcow2: Compression type incompatible feature bit must not be set"),
        "header-104",
    ),
    Row(
        "compression-type-ignored-short-header",
        "v3",
        patch_ignored_compression_type,
        QemuExpect("info", 0, '"compression-type": "zlib"'),
    ),
    Row(
        "extl2-cluster-too-small",
        "small-cluster",
        _fields({"incompatible_features": lambda v: v | 0x10}, "cluster_bits"),
        QemuExpect("info", 1, "Unsupported subcluster size: 128"),
    ),
    Row(
        "data-file-bit-without-file",
        "v3",
        _bits("incompatible_features", 0x4),
        QemuExpect("check", 1, "'data-file' is required for this image"),
    ),
    Row(
        "data-file-raw-without-data-file",
        "v3",
        _bits("autoclear_features", 0x2),
        QemuExpect("check", 1, "data-file-raw requires a data file"),
    ),
    Row(
        "data-file-raw-with-backing",
        "hdr-data-file-raw",
        patch_raw_with_backing,
        QemuExpect("info", 0, '"backing-filename"'),
    ),
    Row(
        "data-file-name-without-bit",
        "hdr-data-file",
        patch_data_file_name_without_bit,
        QemuExpect("check", 0),
        absent=("data-file-present",),
    ),
    Row(
        "refcount-order-too-large",
        "v3",
        _field("refcount_order", lambda v: 7),
        QemuExpect("info", 1, "Reference count entry width too large; may not exceed 64 bits"),
    ),
    # --- §2.3 extensions and backing file name --------------------------------
    Row(
        "ext-overruns-area",
        "v3",
        _ext_length(ib.EXT_FEATURE_TABLE, lambda n: CLUSTER),
        QemuExpect("info", 1, "Header extension too large"),
    ),
    # A bitmaps extension whose length overruns the area: QEMU refuses the
    # overrun first; its length is not also bitmaps-ext-bad-length's.
    Row(
        "ext-overruns-area",
        "bitmaps",
        _ext_length(ib.EXT_BITMAPS, lambda n: CLUSTER),
        QemuExpect("info", 1, "Header extension too large"),
        "bitmaps",
        absent=("bitmaps-ext-bad-length",),
    ),
    Row(
        "ext-overruns-area",
        "backing",
        patch_marker_into_name,
        QemuExpect("info", 1, "Header extension too large"),
        "end-marker",
    ),
    Row(
        "ext-duplicate",
        "backing",
        patch_duplicate_backing_format,
        QemuExpect("info", 0, '"backing-filename-format": "qcow2"'),
    ),
    Row("ext-no-end-marker", "backing", patch_no_end_marker, QemuExpect("info", 0, '"backing-filename"')),
    Row("ext-order", "backing", patch_swap_extensions, QemuExpect("info", 0, '"backing-filename-format": "qcow2"')),
    Row("ext-unknown-type", "v3", patch_unknown_extension, QemuExpect("check", 0)),
    Row(
        "backing-format-too-long",
        "backing",
        patch_long_backing_format,
        QemuExpect("info", 1, "ERROR: ext_backing_format: len=16 too large (>=16)"),
    ),
    Row("backing-format-without-backing", "backing", patch_drop_backing, QemuExpect("check", 0)),
    Row("feature-table-bad-length", "v3", _ext_length(ib.EXT_FEATURE_TABLE, lambda n: n - 1), QemuExpect("check", 0)),
    Row("feature-table-bad-entry", "v3", _feature_entry(2, 0, 3, "type"), QemuExpect("check", 0), "type"),
    Row("feature-table-bad-entry", "v3", _feature_entry(1, 1, 64, "bit"), QemuExpect("check", 0), "bit"),
    Row(
        "backing-offset-out-of-cluster",
        "backing",
        _field("backing_file_offset", lambda v: CLUSTER + 8),
        QemuExpect("info", 1, "Invalid backing file offset"),
    ),
    Row(
        "backing-name-too-long",
        "backing",
        _field("backing_file_size", lambda v: 1024),
        QemuExpect("info", 1, "Backing file name too long"),
    ),
    Row(
        "backing-name-too-long",
        "backing",
        _fields({"backing_file_offset": lambda v: CLUSTER - 4}, "backing_file_size"),
        QemuExpect("info", 1, "Backing file name too long"),
        "past-cluster-0",
    ),
    Row(
        "backing-name-overlaps-header",
        "backing",
        _field("backing_file_offset", lambda v: 64),
        QemuExpect("info", 0),
        "in-header",
    ),
    Row(
        "backing-name-overlaps-header",
        "backing",
        patch_name_in_extensions,
        QemuExpect("info", 1, "Header extension too large"),
        "in-extensions",
    ),
    Row("backing-name-empty", "backing", _field("backing_file_size", lambda v: 0), QemuExpect("check", 0)),
    # --- §2.15 file level ---------------------------------------------------------
    Row("file-trailing-partial-cluster", "v3", patch_partial_cluster, QemuExpect("check", 0)),
]
