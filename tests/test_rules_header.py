"""Rule tests for the header (catalogue §2.1), feature bits (§2.2), header
extensions and the backing file name (§2.3), and the file-level
trailing-partial-cluster rule (§2.15).

Table-driven like tests/test_rules.py: each row patches a real qemu-img image
to have one defect. For every rule, (a) the patched image fires it once with
the catalogue's severity at the patched field, (b) the clean base does not
fire it, (c) ``rules: {NAME: disable}`` silences it. ``test_qemu_agrees``
proves the recipes: where a row names what QEMU does (``qemu-img info`` /
``check`` / a read-write ``qemu-io`` open), QEMU does it with the catalogue's
message.

Every patched image is built once per session and all of them are linted in
one ``qcow2lint check`` run (and once more with every rule of this file
disabled in a config), which keeps the file fast: the per-row tests read
their image's part of those two reports.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import imagebuilder as ib
from harness import Bases, Report, format_findings, lint_json, rules_fired, write_config
from qcow2lint.reader import open_image
from qcow2lint.registry import load_registry

KIB = 1024
MIB = 1 << 20
CLUSTER = 64 * KIB

#: name -> (code, severity, scope) of every rule this file tests.
RULES: dict[str, tuple[str, str, str]] = {
    "header-crypt-method-unknown": ("Q0105", "error", "Header"),
    "header-crypt-aes-deprecated": ("Q0106", "warning", "Header"),
    "header-length-too-small": ("Q0107", "error", "Header"),
    "header-length-too-large": ("Q0108", "error", "Header"),
    "header-unknown-fields-nonzero": ("Q0111", "info", "Header"),
    "header-size-unaligned": ("Q0112", "warning", "Header"),
    "header-size-too-big": ("Q0113", "error", "Header"),
    "header-v2-has-v3-bytes": ("Q0114", "info", "Header"),
    "dirty-bit-set": ("Q0204", "warning", "Header"),
    "dirty-without-lazy-refcounts": ("Q0205", "warning", "Header"),
    "corrupt-bit-set": ("Q0206", "error", "Header"),
    "compression-type-unknown": ("Q0207", "error", "Header"),
    "compression-type-without-bit": ("Q0208", "error", "Header"),
    "compression-bit-without-type": ("Q0209", "error", "Header"),
    "compression-type-ignored-short-header": ("Q0210", "info", "Header"),
    "extl2-cluster-too-small": ("Q0211", "error", "Header"),
    "data-file-bit-without-file": ("Q0212", "error", "Header"),
    "data-file-raw-without-data-file": ("Q0213", "error", "Header"),
    "data-file-raw-with-backing": ("Q0214", "warning", "Header"),
    "data-file-name-without-bit": ("Q0215", "warning", "HeaderExtension"),
    "refcount-order-too-large": ("Q0216", "error", "Header"),
    "ext-overruns-area": ("Q0301", "error", "ExtensionArea"),
    "ext-duplicate": ("Q0302", "warning", "HeaderExtension"),
    "ext-no-end-marker": ("Q0303", "info", "ExtensionArea"),
    "ext-order": ("Q0304", "info", "HeaderExtension"),
    "ext-unknown-type": ("Q0305", "info", "HeaderExtension"),
    "backing-format-too-long": ("Q0306", "error", "HeaderExtension"),
    "backing-format-without-backing": ("Q0307", "warning", "HeaderExtension"),
    "feature-table-bad-length": ("Q0308", "warning", "HeaderExtension"),
    "feature-table-bad-entry": ("Q0309", "warning", "HeaderExtension"),
    "backing-offset-out-of-cluster": ("Q0310", "error", "Header"),
    "backing-name-too-long": ("Q0311", "error", "Header"),
    "backing-name-overlaps-header": ("Q0312", "error", "ExtensionArea"),
    "backing-name-empty": ("Q0313", "warning", "Header"),
    "file-trailing-partial-cluster": ("Q1501", "info", "Image"),
}


# ---------------------------------------------------------------------------
# clean bases: the conftest ones (v3, v2) plus a few more, built once
# ---------------------------------------------------------------------------


class HeaderBases:
    """Clean qemu-img images this file needs besides conftest's v3 and v2."""

    def __init__(self, root: Path, shared: Bases) -> None:
        self.root = root
        self.shared = shared
        self._built: dict[str, Path] = {}

    def _backing_file(self) -> Path:
        path = self.root / "backing-base.qcow2"
        if not path.exists():
            ib.create(path, 16 * MIB)
        return path

    def _build(self, name: str, path: Path) -> None:
        if name == "backing":  # v3 top image: backing format ext, feature table, name
            ib.create(path, 16 * MIB, backing=self._backing_file(), backing_fmt="qcow2")
            ib.write(path, CLUSTER, CLUSTER, 0x44)
        elif name == "backing-v2":
            ib.create(path, 16 * MIB, {"compat": "0.10"}, backing=self._backing_file(), backing_fmt="qcow2")
        elif name == "backing-v2-raw":
            raw = self.root / "backing-base.raw"
            raw.write_bytes(b"\x5a" * MIB)
            ib.create(path, MIB, {"compat": "0.10"}, backing=raw, backing_fmt="raw")
        elif name == "lazy":
            ib.create(path, 16 * MIB, {"lazy_refcounts": True})
            ib.write(path, 0, CLUSTER, 0x55)
        elif name == "small-cluster":
            ib.create(path, MIB, {"cluster_size": 4 * KIB})
            ib.write(path, 0, 8 * KIB, 0x66)
        elif name in ("data-file", "data-file-raw"):
            options: dict[str, object] = {"data_file": str(self.root / f"{name}.raw")}
            if name == "data-file-raw":
                options["data_file_raw"] = True
            ib.create(path, 16 * MIB, options)
        else:
            raise KeyError(name)

    def path(self, name: str) -> Path:
        """The (never modified) clean base ``name``."""
        if name in ("v3", "v2"):
            return self.shared.path(name)
        if name not in self._built:
            path = self.root / f"{name}.qcow2"
            self._build(name, path)
            self._built[name] = path
        return self._built[name]

    @property
    def backing_file(self) -> Path:
        """An existing file that patched images may name as their backing file."""
        return self._backing_file()


BASE_NAMES = (
    "v3", "v2", "backing", "backing-v2", "backing-v2-raw", "lazy", "small-cluster", "data-file", "data-file-raw",
)  # fmt: skip


# ---------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a patch wrote: acceptable finding offsets and a location regex."""

    offsets: tuple[int, ...]
    location: str  # matched with re.fullmatch


@dataclass(frozen=True)
class QemuExpect:
    """What a QEMU tool says about the patched image (catalogue §2 QEMU column).

    ``tool`` is ``info`` (``qemu-img info --output=json``, no I/O, no backing
    file), ``check`` (``qemu-img check``) or ``rw`` (a read-write ``qemu-io``
    open)."""

    tool: str
    returncode: int
    message: str | None = None  # substring of stdout+stderr


@dataclass(frozen=True)
class Row:
    """One rule test case."""

    rule: str
    base: str
    patch: Callable[[ib.Qcow2Image, HeaderBases], Target]
    qemu: QemuExpect | None = None
    variant: str = ""

    @property
    def id(self) -> str:
        """pytest id (also the patched image's file name)."""
        return f"{self.rule}[{self.variant}]" if self.variant else self.rule

    @property
    def severity(self) -> str:
        """The catalogue's severity."""
        return RULES[self.rule][1]


def run_qemu(tool: str, path: Path) -> ib.CheckResult:
    """Run one of the QemuExpect tools on ``path``."""
    argv = {
        "info": [ib.QEMU_IMG, "info", "-U", "--output=json", "-f", "qcow2", path],
        "check": [ib.QEMU_IMG, "check", "-f", "qcow2", path],
        "rw": [ib.QEMU_IO, "-c", "read 0 512", "-f", "qcow2", path],
    }[tool]
    proc = ib.run_tool(argv, check=False)
    return ib.CheckResult(proc.returncode, proc.stdout, proc.stderr)


def header_at(name: str) -> int:
    """Byte offset of a header field."""
    return ib.HEADER_FIELDS[name][0]


def _field(name: str, value: Callable[[int], int], location: str | None = None):
    def patch(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
        off = img.set_header(name, value(img.header[name]))
        return Target((off,), location or re.escape(f"header.{name}"))

    return patch


def _fields(changes: dict[str, Callable[[int], int]], target: str):
    """Several header fields changed; the finding points at ``target``."""

    def patch(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
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


def patch_unknown_fields(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """header_length 120: the extension area moved to 120, and byte 115 of
    the unknown header fields at 112..119 set."""
    rewrite_area(img, extension_list(img), start=120)
    img.write_bytes(112, b"\0\0\0\x07" + bytes(4))
    img.set_header("header_length", 120)
    return Target((115,), re.escape("header.unknown_fields"))


def patch_v2_v3_bytes(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """A v2 image whose bytes 72..111 hold v3 fields (features 0,
    refcount_order 4, header_length 112) as if only the version had been
    changed from 3 to 2."""
    assert img.version == 2 and not img.extensions
    img.write_bytes(72, struct.pack(">QQQII", 0, 0, 0, 4, 112) + bytes(8))
    return Target((72,), re.escape("header.v3_fields_on_disk"))


# --- §2.2 feature bits --------------------------------------------------------


def patch_compression_byte(value: int, incompat: int = 0):
    def patch(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
        off = img.set_header("compression_type", value)
        if incompat:
            img.set_header("incompatible_features", img.header["incompatible_features"] | incompat)
        return Target((off,), re.escape("header.compression_type"))

    return patch


def patch_bit3_short_header(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """header_length 104 (extensions moved to 104: no compression type
    field) with incompatible bit 3 set."""
    rewrite_area(img, extension_list(img), start=104)
    img.set_header("header_length", 104)
    off = img.set_header("incompatible_features", img.header["incompatible_features"] | 0x8)
    return Target((off,), re.escape("header.incompatible_features"))


def patch_ignored_compression_type(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """header_length 104 with byte 104 = 1 (zstd), as the catalogue tested:
    the 8 bytes at 104 become an unknown "extension" 0x01000000 of length 0
    and the feature table at 112 is still found."""
    img.set_header("header_length", 104)
    off = img.set_header("compression_type", 1)
    return Target((off,), re.escape("header.compression_type"))


def patch_data_file_name_without_bit(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
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


def patch_raw_with_backing(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """A backing file name added to a data-file-raw image."""
    assert img.header["autoclear_features"] & 0x2
    add_backing_name(img, str(bases.backing_file).encode())
    return Target((header_at("autoclear_features"),), re.escape("header.autoclear_features"))


# --- §2.3 extensions and backing name --------------------------------------


def _ext_length(ext_type: int, change: Callable[[int], int]):
    def patch(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
        ext = img.extension(ext_type)
        off = img.set_ext_header(ext.index, length=change(ext.length)) + 4
        return Target((off,), re.escape(f"extensions[{ext.index}]({_SLUGS[ext_type]}).length"))

    return patch


_SLUGS = {ib.EXT_FEATURE_TABLE: "feature-table", ib.EXT_BACKING_FORMAT: "backing-format"}


def patch_marker_into_name(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """backing_file_offset moved 4 bytes into the end marker."""
    marker = end_marker_offset(img)
    img.set_header("backing_file_offset", marker + 4)
    return Target((marker,), re.escape("extensions.end_marker"))


def patch_duplicate_backing_format(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """Backing format "raw", then "qcow2" (QEMU uses the last), then the feature table."""
    table = img.extension(ib.EXT_FEATURE_TABLE).data
    area = rewrite_area(
        img, [(ib.EXT_BACKING_FORMAT, b"raw"), (ib.EXT_BACKING_FORMAT, b"qcow2"), (ib.EXT_FEATURE_TABLE, table)]
    )
    return Target((area.extensions[1],), re.escape("extensions[1](backing-format)"))


def patch_no_end_marker(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """The end marker dropped: the backing file name follows the last extension."""
    area = rewrite_area(img, extension_list(img), marker=False)
    return Target((area.name,), re.escape("extensions"))


def patch_swap_extensions(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """Feature table first, backing format second."""
    assert [t for t, _ in extension_list(img)] == [ib.EXT_BACKING_FORMAT, ib.EXT_FEATURE_TABLE]
    area = rewrite_area(img, extension_list(img)[::-1])
    return Target((area.extensions[1],), re.escape("extensions[1](backing-format)"))


def patch_unknown_extension(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """An unknown extension appended after the feature table."""
    off = img.add_extension(0x12345678, b"hello")
    return Target((off,), re.escape(f"extensions[{len(img.extensions) - 1}](0x12345678)"))


def patch_long_backing_format(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """A 16-byte backing format name."""
    exts = [(ib.EXT_BACKING_FORMAT, b"qcow2-extralong!") if t == ib.EXT_BACKING_FORMAT else (t, d)
            for t, d in extension_list(img)]  # fmt: skip
    area = rewrite_area(img, exts)
    return Target((area.extensions[0] + 4,), re.escape("extensions[0](backing-format).length"))


def patch_drop_backing(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """backing_file_offset and size zeroed, the backing format extension kept."""
    ext = img.extension(ib.EXT_BACKING_FORMAT)
    img.set_header("backing_file_offset", 0)
    img.set_header("backing_file_size", 0)
    return Target((ext.offset,), re.escape(f"extensions[{ext.index}](backing-format)"))


def _feature_entry(index: int, field_offset: int, value: int, field: str):
    def patch(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
        ext = img.extension(ib.EXT_FEATURE_TABLE)
        off = img.write_int(ext.data_offset + 48 * index + field_offset, "B", value)
        return Target((off,), re.escape(f"extensions[{ext.index}](feature-table).entries[{index}].{field}"))

    return patch


def patch_name_in_extensions(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """backing_file_offset pointing into the feature table's data."""
    ext = img.extension(ib.EXT_FEATURE_TABLE)
    off = img.set_header("backing_file_offset", ext.data_offset + 48)
    return Target((off,), re.escape("header.backing_file_offset"))


# --- §2.15 file level -----------------------------------------------------------


def patch_partial_cluster(img: ib.Qcow2Image, bases: HeaderBases) -> Target:
    """512 bytes appended to a file that ends on a cluster boundary."""
    size = img.file_size
    assert size % img.cluster_size == 0
    img.truncate(size + 512)
    return Target((size,), re.escape("file"))


def _bits(field: str, bits: int):
    return _field(field, lambda v: v | bits)


ROWS: list[Row] = [
    # --- §2.1 header ------------------------------------------------------------
    Row("header-crypt-method-unknown", "v3", _field("crypt_method", lambda v: 3),
        QemuExpect("info", 1, "Unsupported encryption method 3")),
    Row("header-crypt-aes-deprecated", "v3", _field("crypt_method", lambda v: 1),
        QemuExpect("check", 1, "Parameter 'encrypt.key-secret' is required for cipher")),
    Row("header-length-too-small", "v3", _field("header_length", lambda v: 100),
        QemuExpect("info", 1, "qcow2 header too short")),
    Row("header-length-too-large", "v3", _field("header_length", lambda v: CLUSTER + 8),
        QemuExpect("info", 1, "qcow2 header exceeds cluster size")),
    Row("header-unknown-fields-nonzero", "v3", patch_unknown_fields, QemuExpect("check", 0)),
    Row("header-size-unaligned", "v3", _field("size", lambda v: v - 1),
        QemuExpect("info", 0, '"virtual-size": 2147483136')),
    Row("header-size-too-big", "v3", _field("size", lambda v: 1 << 61), QemuExpect("info", 1, "Image is too big")),
    Row("header-size-too-big", "small-cluster", _field("size", lambda v: 1 << 52),
        QemuExpect("info", 1, "Image is too big"), "4k-clusters"),
    Row("header-v2-has-v3-bytes", "v2", patch_v2_v3_bytes, QemuExpect("check", 0)),
    # --- §2.2 feature bits --------------------------------------------------------
    Row("dirty-bit-set", "lazy", _bits("incompatible_features", 0x1), QemuExpect("info", 0, '"dirty-flag": true')),
    Row("dirty-without-lazy-refcounts", "v3", _bits("incompatible_features", 0x1), QemuExpect("check", 0)),
    Row("corrupt-bit-set", "v3", _bits("incompatible_features", 0x2),
        QemuExpect("rw", 1, "qcow2: Image is corrupt; cannot be opened read/write")),
    Row("corrupt-bit-set", "v3", _bits("incompatible_features", 0x2), QemuExpect("check", 0, "No errors"),
        "check-is-silent"),
    Row("compression-type-unknown", "v3", patch_compression_byte(7, incompat=0x8),
        QemuExpect("info", 1, "qcow2: unknown compression type: 7")),
    Row("compression-type-without-bit", "v3", patch_compression_byte(1),
        QemuExpect("info", 1, "qcow2: Compression type incompatible feature bit must be set")),
    Row("compression-bit-without-type", "v3", _bits("incompatible_features", 0x8),
        QemuExpect("info", 1, "qcow2: Compression type incompatible feature bit must not be set")),
    Row("compression-bit-without-type", "v3", patch_bit3_short_header,
        QemuExpect("info", 1, "qcow2: Compression type incompatible feature bit must not be set"), "header-104"),
    Row("compression-type-ignored-short-header", "v3", patch_ignored_compression_type,
        QemuExpect("info", 0, '"compression-type": "zlib"')),
    Row("extl2-cluster-too-small", "small-cluster",
        _fields({"incompatible_features": lambda v: v | 0x10}, "cluster_bits"),
        QemuExpect("info", 1, "Unsupported subcluster size: 128")),
    Row("data-file-bit-without-file", "v3", _bits("incompatible_features", 0x4),
        QemuExpect("check", 1, "'data-file' is required for this image")),
    Row("data-file-raw-without-data-file", "v3", _bits("autoclear_features", 0x2),
        QemuExpect("check", 1, "data-file-raw requires a data file")),
    Row("data-file-raw-with-backing", "data-file-raw", patch_raw_with_backing,
        QemuExpect("info", 0, '"backing-filename"')),
    Row("data-file-name-without-bit", "data-file", patch_data_file_name_without_bit, QemuExpect("check", 0)),
    Row("refcount-order-too-large", "v3", _field("refcount_order", lambda v: 7),
        QemuExpect("info", 1, "Reference count entry width too large; may not exceed 64 bits")),
    # --- §2.3 extensions and backing file name --------------------------------
    Row("ext-overruns-area", "v3", _ext_length(ib.EXT_FEATURE_TABLE, lambda n: CLUSTER),
        QemuExpect("info", 1, "Header extension too large")),
    Row("ext-overruns-area", "backing", patch_marker_into_name,
        QemuExpect("info", 1, "Header extension too large"), "end-marker"),
    Row("ext-duplicate", "backing", patch_duplicate_backing_format,
        QemuExpect("info", 0, '"backing-filename-format": "qcow2"')),
    Row("ext-no-end-marker", "backing", patch_no_end_marker, QemuExpect("info", 0, '"backing-filename"')),
    Row("ext-order", "backing", patch_swap_extensions, QemuExpect("info", 0, '"backing-filename-format": "qcow2"')),
    Row("ext-unknown-type", "v3", patch_unknown_extension, QemuExpect("check", 0)),
    Row("backing-format-too-long", "backing", patch_long_backing_format,
        QemuExpect("info", 1, "ERROR: ext_backing_format: len=16 too large (>=16)")),
    Row("backing-format-without-backing", "backing", patch_drop_backing, QemuExpect("check", 0)),
    Row("feature-table-bad-length", "v3", _ext_length(ib.EXT_FEATURE_TABLE, lambda n: n - 1), QemuExpect("check", 0)),
    Row("feature-table-bad-entry", "v3", _feature_entry(2, 0, 3, "type"), QemuExpect("check", 0), "type"),
    Row("feature-table-bad-entry", "v3", _feature_entry(1, 1, 64, "bit"), QemuExpect("check", 0), "bit"),
    Row("backing-offset-out-of-cluster", "backing", _field("backing_file_offset", lambda v: CLUSTER + 8),
        QemuExpect("info", 1, "Invalid backing file offset")),
    Row("backing-name-too-long", "backing", _field("backing_file_size", lambda v: 1024),
        QemuExpect("info", 1, "Backing file name too long")),
    Row("backing-name-too-long", "backing",
        _fields({"backing_file_offset": lambda v: CLUSTER - 4}, "backing_file_size"),
        QemuExpect("info", 1, "Backing file name too long"), "past-cluster-0"),
    Row("backing-name-overlaps-header", "backing", _field("backing_file_offset", lambda v: 64),
        QemuExpect("info", 0), "in-header"),
    Row("backing-name-overlaps-header", "backing", patch_name_in_extensions,
        QemuExpect("info", 1, "Header extension too large"), "in-extensions"),
    Row("backing-name-empty", "backing", _field("backing_file_size", lambda v: 0), QemuExpect("check", 0)),
    # --- §2.15 file level ---------------------------------------------------------
    Row("file-trailing-partial-cluster", "v3", patch_partial_cluster, QemuExpect("check", 0)),
]  # fmt: skip


def _first_row_per_rule(rows: list[Row]) -> list[Row]:
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.rule, row)
    return list(first.values())


FIRST_ROW_PER_RULE = _first_row_per_rule(ROWS)


# ---------------------------------------------------------------------------
# the session: build every patched image, lint them all in two runs
# ---------------------------------------------------------------------------


@dataclass
class Linted:
    """Every row's patched image and its reports, with the rules of this
    file enabled (keyed by row id, and ``base:<name>`` for the clean bases)
    and disabled (keyed by row id)."""

    bases: HeaderBases
    images: dict[str, Path]
    targets: dict[str, Target]
    #: Why an image could not be built (row id) or linted (``lint:<key>``).
    errors: dict[str, BaseException]
    enabled: dict[str, Report]
    disabled: dict[str, Report]

    def image(self, row: Row) -> Path:
        """The row's patched image (re-raises what went wrong building it)."""
        if row.id in self.errors:
            raise self.errors[row.id]
        return self.images[row.id]

    def report(self, key: str, *, disabled: bool = False) -> Report:
        """The report of one image (re-raises what went wrong with it)."""
        if key in self.errors:
            raise self.errors[key]
        if f"lint:{key}" in self.errors:
            raise self.errors[f"lint:{key}"]
        return (self.disabled if disabled else self.enabled)[key]


@pytest.fixture(scope="session")
def header_bases(base_images: Bases, tmp_path_factory: pytest.TempPathFactory) -> HeaderBases:
    """The clean bases of this file."""
    return HeaderBases(tmp_path_factory.mktemp("header-bases"), base_images)


@pytest.fixture(scope="session")
def linted(header_bases: HeaderBases, tmp_path_factory: pytest.TempPathFactory) -> Linted:
    """Build every row's image, then lint all of them (and the bases) at once."""
    root = tmp_path_factory.mktemp("header-rows")
    images: dict[str, Path] = {}
    targets: dict[str, Target] = {}
    errors: dict[str, BaseException] = {}
    for row in ROWS:
        path = root / (re.sub(r"[^\w.-]", "_", row.id) + ".qcow2")
        try:
            shutil.copyfile(header_bases.path(row.base), path)
            targets[row.id] = row.patch(ib.Qcow2Image(path), header_bases)
            images[row.id] = path
        except Exception as exc:  # reported by that row's tests, not the others'
            errors[row.id] = exc
    config_dir = root / "config"
    config_dir.mkdir()
    config = write_config(config_dir, "rules:\n" + "".join(f"  {name}: disable\n" for name in RULES))
    bases = {f"base:{name}": header_bases.path(name) for name in BASE_NAMES}
    enabled = _lint_each({**images, **bases}, errors)
    disabled = _lint_each(images, errors, "--config", str(config))
    return Linted(header_bases, images, targets, errors, enabled, disabled)


def _lint_each(paths: dict[str, Path], errors: dict[str, BaseException], *args: str) -> dict[str, Report]:
    """One ``qcow2lint check`` run over every image, split per image.  If
    the run fails as a whole, each half is run again (down to single
    images), so that a crash on one image fails only its own row."""
    try:
        report = lint_json(list(paths.values()), *args)
    except AssertionError as exc:
        if len(paths) == 1:
            errors.setdefault(f"lint:{next(iter(paths))}", exc)
            return {}
        keys = list(paths)
        half = len(keys) // 2
        return {
            **_lint_each({key: paths[key] for key in keys[:half]}, errors, *args),
            **_lint_each({key: paths[key] for key in keys[half:]}, errors, *args),
        }
    return {key: {"images": [report["images"][index]]} for index, key in enumerate(paths)}


def assert_points_at(finding: dict, target: Target) -> None:
    """The finding's offset is one of the patched offsets and its location matches."""
    assert finding["offset"] in target.offsets, (
        f"offset {finding['offset']:#x} not in {[hex(o) for o in target.offsets]}: {finding}"
    )
    assert re.fullmatch(target.location, finding["location"]), (
        f"location {finding['location']!r} does not match /{target.location}/: {finding}"
    )


# ---------------------------------------------------------------------------
# (a) fires, (b) quiet on the clean base, (c) disabled; QEMU agrees
# ---------------------------------------------------------------------------


def test_every_rule_has_a_row_and_the_registry_agrees() -> None:
    """Each rule of this file is tested and registered with its code, severity and scope."""
    assert {row.rule for row in ROWS} == set(RULES)
    registry = load_registry()
    for name, (code, severity, scope) in RULES.items():
        rule = registry.get(name)
        assert rule is not None, name
        assert (rule.code, str(rule.severity), rule.scope.__name__) == (code, severity, scope), name
        assert "QEMU" in rule.doc, name
    # catalogue row v2-refcount-order has no condition: answered, not a rule
    assert registry.get("v2-refcount-order") is None and registry.get("Q0217") is None


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_rule_fires(row: Row, linted: Linted) -> None:
    """(a) The defect is reported once, with its severity, at the patched structure."""
    linted.image(row)
    report = linted.report(row.id)
    hits = rules_fired(report).get(row.rule, [])
    assert len(hits) == 1, (
        f"{row.rule} fired {len(hits)} times; all findings:\n{format_findings(report['images'][0]['findings'])}"
    )
    finding = hits[0]
    assert finding["severity"] == row.severity, finding
    assert finding["code"] == RULES[row.rule][0], finding
    assert_points_at(finding, linted.targets[row.id])


@pytest.mark.parametrize("row", FIRST_ROW_PER_RULE, ids=lambda r: r.rule)
def test_rule_quiet_on_clean_base(row: Row, linted: Linted) -> None:
    """(b) The unpatched base does not fire the rule."""
    fired = rules_fired(linted.report(f"base:{row.base}"))
    assert row.rule not in fired, format_findings(fired[row.rule])


@pytest.mark.parametrize("row", FIRST_ROW_PER_RULE, ids=lambda r: r.rule)
def test_rule_disabled_in_config(row: Row, linted: Linted) -> None:
    """(c) ``rules: {NAME: disable}`` silences the rule on the patched image."""
    linted.image(row)
    fired = rules_fired(linted.report(row.id, disabled=True))
    assert row.rule not in fired, format_findings(fired[row.rule])


def test_disabling_one_rule_leaves_the_others(linted: Linted, tmp_path: Path) -> None:
    """Disabling one rule by name keeps the others: the end marker that runs
    into the backing file name fires both ext-overruns-area and
    backing-name-overlaps-header; with the latter off, the former stays."""
    row = next(r for r in ROWS if r.id == "ext-overruns-area[end-marker]")
    config = write_config(tmp_path, "rules:\n  backing-name-overlaps-header: disable\n")
    fired = rules_fired(lint_json(linted.image(row), "--config", str(config)))
    assert "backing-name-overlaps-header" not in fired and "ext-overruns-area" in fired, fired


@pytest.mark.parametrize("row", [r for r in ROWS if r.qemu], ids=lambda r: r.id)
def test_qemu_agrees(row: Row, linted: Linted, tmp_path: Path) -> None:
    """The recipe really makes the defect: QEMU reacts as the catalogue says,
    and the clean base passes the same tool (a read-write open on a copy)."""
    assert row.qemu is not None
    base = linted.bases.path(row.base)
    if row.qemu.tool == "rw":
        base = Path(shutil.copyfile(base, tmp_path / "clean.qcow2"))
    clean = run_qemu(row.qemu.tool, base)
    assert clean.returncode == 0, f"base {row.base} is not clean:\n{clean.output}"
    result = run_qemu(row.qemu.tool, linted.image(row))
    assert result.returncode == row.qemu.returncode, result.output
    if row.qemu.message is not None:
        assert row.qemu.message in result.output, result.output


# ---------------------------------------------------------------------------
# several defects at once; real images never fire the non-info rules
# ---------------------------------------------------------------------------


def test_many_header_defects_in_one_image(base_images: Bases, tmp_path: Path) -> None:
    """Unknown compression type, unaligned header_length, a duplicate extension
    and the corrupt bit: QEMU refuses at the first, qcow2lint reports them all."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    table = img.extension(ib.EXT_FEATURE_TABLE).data
    area = rewrite_area(img, [(ib.EXT_FEATURE_TABLE, table), (ib.EXT_FEATURE_TABLE, table)], start=108)
    length_off = img.set_header("header_length", 108)
    type_off = img.set_header("compression_type", 7)
    incompat_off = img.set_header("incompatible_features", img.header["incompatible_features"] | 0x2)

    info = run_qemu("info", path)
    assert info.returncode == 1 and "unknown compression type: 7" in info.output, info.output

    report = lint_json(path)
    fired = rules_fired(report)
    expected = {
        "compression-type-unknown": Target((type_off,), re.escape("header.compression_type")),
        "compression-type-without-bit": Target((type_off,), re.escape("header.compression_type")),
        "header-length-unaligned": Target((length_off,), re.escape("header.header_length")),
        "ext-duplicate": Target((area.extensions[1],), re.escape("extensions[1](feature-table)")),
        "corrupt-bit-set": Target((incompat_off,), re.escape("header.incompatible_features")),
    }
    missing = set(expected) - set(fired)
    assert not missing, f"missing {missing}; got:\n{format_findings(report['images'][0]['findings'])}"
    for rule, target in expected.items():
        assert len(fired[rule]) == 1, format_findings(fired[rule])
        assert_points_at(fired[rule][0], target)
    assert report["_returncode"] == 1


def test_clean_images_fire_only_the_partial_cluster_info(linted: Linted) -> None:
    """Real qemu-img images (v3, v2, v2 and v3 with qcow2 and raw backing files,
    lazy refcounts, 4 KiB clusters, external data files) get no finding from
    these rules except file-trailing-partial-cluster, which is normal."""
    for name in BASE_NAMES:
        report = linted.report(f"base:{name}")
        fired = {rule: hits for rule, hits in rules_fired(report).items() if rule in RULES}
        fired.pop("file-trailing-partial-cluster", None)
        assert not fired, f"{name}:\n" + format_findings(f for hits in fired.values() for f in hits)


def test_old_qemu_header_length_104_is_not_a_compression_type(header_bases: HeaderBases, tmp_path: Path) -> None:
    """Before QEMU 5.1 images had header_length 104 and the first extension at
    byte 104 (here the backing format 0xe2792aca): byte 104 is then no
    compression type, and the image is fine for QEMU."""
    path = tmp_path / "old.qcow2"
    shutil.copyfile(header_bases.path("backing"), path)
    img = ib.Qcow2Image(path)
    rewrite_area(img, extension_list(img), start=104)
    img.set_header("header_length", 104)
    assert img.read_bytes(104, 1) == b"\xe2"
    assert run_qemu("info", path).returncode == 0
    fired = {rule for rule in rules_fired(lint_json(path)) if rule in RULES}
    assert fired <= {"file-trailing-partial-cluster"}, fired


def test_v2_refcount_order_is_answered_by_the_reader(header_bases: HeaderBases) -> None:
    """Catalogue row v2-refcount-order (condition n/a) is not a rule: a v2
    header has no refcount_order field and the reader never reads bytes 96..99
    as one. In a v2 image with a backing file those bytes are the name."""
    path = header_bases.path("backing-v2")
    with open_image(path) as image:
        assert image.header.version == 2
        assert image.header.refcount_order == 4 and image.header.header_length == 72
        assert image.header.v3_fields_on_disk[3] != 4  # bytes 96..99 of the extension area / name
        blocks = list(image.refcount_blocks())
        assert blocks and blocks[0].refcounts()[0] == 1  # 16-bit refcounts decode as QEMU wrote them
    info = json.loads(ib.run_tool([ib.QEMU_IMG, "info", "-U", "--output=json", path]).stdout)
    assert info["format-specific"]["data"]["refcount-bits"] == 16
