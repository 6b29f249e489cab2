"""Rule tests for the bitmaps rules (catalogue §2.14).

Table-driven like test_rules.py: each row patches a copy of a real image
made by qemu-img / qemu-io so that it has exactly one bitmap defect, and
names what QEMU says about it.  For every rule:

(a) the patched image fires the rule once, with the catalogue's severity,
    at the patched offset and structure path;
(b) the clean base does not fire it;
(c) with ``rules: {NAME: disable}`` it does not fire.

``test_qemu_agrees`` proves each recipe makes the defect it claims: QEMU
refuses the image with the catalogue's message (``qemu-img info``), or
``qemu-img check`` reports it, or QEMU is silent where the catalogue says
so.  To keep the file fast, every patched image is linted in one qcow2lint
run (and once more with all these rules disabled).

The bitmaps base (baseimages.py) has bm0 (granularity 512, table of 8
entries, data in table[0] and table[2]) and bm1 (granularity 64 KiB, one
all-zero entry); its directory is the last 64 bytes of the file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import imagebuilder as ib
from baseimages import BITMAP_TABLE_INDEX, CLUSTER
from harness import Bases, format_findings, lint_json, rules_fired, write_config

MIB = 1 << 20
AUTOCLEAR_BITMAPS = 1
IN_USE, AUTO, EXTRA_DATA_COMPATIBLE = 1, 2, 4

# Tail base: a virtual size that is not a whole number of bitmap bytes, so
# the bitmap (granularity 64 KiB) has 1603 bits: byte 200 holds bits
# 1600..1602 and its bits 3..7 are tail bits.  Data in the last guest
# cluster sets bit 1602, which serializes table[0].
TAIL_SIZE = 100 * MIB + 3 * CLUSTER
TAIL_BITS = 1603
TAIL_LAST_BYTE = 200

MY_RULES = (
    "bitmaps-ext-bad-length", "bitmaps-ext-zero-bitmaps", "bitmaps-ext-too-many", "bitmap-dir-too-large",
    "bitmap-dir-size-zero", "bitmap-dir-size-mismatch", "bitmap-count-mismatch", "bitmap-dir-out-of-file",
    "autoclear-bitmaps-without-ext", "bitmaps-ext-without-autoclear", "bitmaps-in-v2", "bitmap-name-empty",
    "bitmap-name-too-long", "bitmap-name-duplicate", "bitmap-type-invalid", "bitmap-granularity-range",
    "bitmap-flag-extra-data-compatible", "bitmap-extra-data", "bitmap-table-offset-zero",
    "bitmap-table-size-zero", "bitmap-table-size-too-large", "bitmap-table-size-wrong",
    "bitmap-table-out-of-file", "bitmap-data-out-of-file", "bitmap-tail-bits-nonzero", "bitmap-in-use",
    "bitmap-data-shared",
)  # fmt: skip


# ---------------------------------------------------------------------------
# base images
# ---------------------------------------------------------------------------


def _build_tail(path: Path) -> None:
    ib.create(path, TAIL_SIZE, {"cluster_size": CLUSTER})
    ib.bitmap_add(path, "tail")
    ib.write(path, TAIL_SIZE - CLUSTER, CLUSTER, 0x5A)


LOCAL_BASES: dict[str, Callable[[Path], None]] = {"bitmaps-tail": _build_tail}


class Bases:
    """The shared base images (conftest) plus this file's own."""

    def __init__(self, shared: Bases, root: Path) -> None:
        self.shared, self.root = shared, root

    def path(self, name: str) -> Path:
        """Path of the clean base ``name`` (built on first use)."""
        if name not in LOCAL_BASES:
            return self.shared.path(name)
        path = self.root / f"{name}.qcow2"
        if not path.exists():
            LOCAL_BASES[name](path)
        return path

    def copy(self, name: str, directory: Path, filename: str) -> Path:
        """A private writable copy of base ``name``."""
        return Path(shutil.copyfile(self.path(name), directory / filename))


@pytest.fixture(scope="module")
def bases(base_images: Bases, tmp_path_factory: pytest.TempPathFactory) -> Bases:
    """Every base this file patches."""
    return Bases(base_images, tmp_path_factory.mktemp("bitmap-bases"))


# ---------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a patch wrote: the finding's offset and a location regex."""

    offset: int
    location: str  # matched with re.fullmatch


@dataclass(frozen=True)
class QemuExpect:
    """What QEMU says: ``qemu-img info`` (open) or ``qemu-img check``."""

    tool: str  # "info" or "check"
    returncode: int
    message: str | None = None  # substring of stdout + stderr


@dataclass(frozen=True)
class Row:
    """One rule test case."""

    rule: str
    severity: str
    base: str
    patch: Callable[[ib.Qcow2Image], Target]
    qemu: QemuExpect
    variant: str = ""
    config: str = ""  # YAML for a --config run; "" = defaults

    @property
    def id(self) -> str:
        """pytest id."""
        return f"{self.rule}[{self.variant}]" if self.variant else self.rule


def refuses(message: str) -> QemuExpect:
    """QEMU cannot open the image and says ``message``."""
    return QemuExpect("info", 1, message)


CONSTRAINTS = "doesn't satisfy the constraints"
EOF_CORRUPTION = QemuExpect("check", 2, "exceeding the end of the file by one cluster or more")


def _ext(img: ib.Qcow2Image, name: str, value: int) -> Target:
    ext = img.extension(ib.EXT_BITMAPS)
    off = img.set_ext_field(ib.EXT_BITMAPS, name, value)
    return Target(off, re.escape(f"extensions[{ext.index}](bitmaps).{name}"))


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
        return Target(img.set_ext_header(ext.index, length=length) + 4, re.escape(f"extensions[{ext.index}](bitmaps).length"))

    return patch


def _entry_target(img: ib.Qcow2Image, which: int, name: str, location_name: str | None = None) -> Target:
    entry = img.bitmap(which)
    label = location_name if location_name is not None else entry.name.decode()
    return Target(img.bitmap_field_offset(which, name), re.escape(f"bitmaps[{which}]({label}).{name}"))


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
    return Target(off, re.escape("header.autoclear_features"))


def patch_ext_without_autoclear(img: ib.Qcow2Image) -> Target:
    """Autoclear bit 0 cleared in an image with bitmaps."""
    assert img.header["autoclear_features"] & AUTOCLEAR_BITMAPS
    off = img.set_header("autoclear_features", img.header["autoclear_features"] & ~AUTOCLEAR_BITMAPS)
    return Target(off, re.escape("header.autoclear_features"))


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
    return Target(ext.offset, re.escape(f"extensions[{ext.index}](bitmaps)"))


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
    target = Target(img.bitmap_field_offset(1, "name_size"), re.escape(f"bitmaps[1]({shown}).name_size"))
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
        return Target(name_at, re.escape("bitmaps[1](bm0).name"))

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
    return Target(off, re.escape(f"bitmaps[0](bm0).table[{BITMAP_TABLE_INDEX}]"))


def patch_data_shared(img: ib.Qcow2Image) -> Target:
    """bm0.table[2] points at the active L1 table's cluster: bitmap data and
    the L1 table claim the same cluster."""
    l1 = img.header["l1_table_offset"]
    assert l1 % CLUSTER == 0 and img.bitmap(0).table[BITMAP_TABLE_INDEX] & ib.BME_TABLE_OFFSET_MASK
    img.set_bitmap_table(0, BITMAP_TABLE_INDEX, l1)
    return Target(l1, re.escape(f"bitmaps[0](bm0).table.data@{l1:#x}"))


def patch_tail_bits(byte: int, bits: int) -> Callable[[ib.Qcow2Image], Target]:
    """Set ``bits`` in byte ``byte`` of the tail bitmap's only data cluster."""

    def patch(img: ib.Qcow2Image) -> Target:
        data = img.bitmap(0).table[0] & ib.BME_TABLE_OFFSET_MASK
        assert data, "recipe must serialize table[0]"
        old = img.read_bytes(data + byte, 1)[0]
        img.write_bytes(data + byte, bytes([old | bits]))
        return Target(data + byte, re.escape("bitmaps[0](tail).table[0].data"))

    return patch


ROWS: list[Row] = [
    # --- the bitmaps extension ---------------------------------------------
    Row("bitmaps-ext-bad-length", "error", "bitmaps", ext_length(16),
        refuses("bitmaps_ext: Invalid extension length"), "16"),
    Row("bitmaps-ext-bad-length", "error", "bitmaps", ext_length(32),
        refuses("bitmaps_ext: Invalid extension length"), "32"),
    Row("bitmaps-ext-zero-bitmaps", "error", "bitmaps", ext_field("nb_bitmaps", lambda v: 0),
        refuses("found bitmaps extension with zero bitmaps")),
    Row("bitmaps-ext-too-many", "error", "bitmaps", ext_field("nb_bitmaps", lambda v: 65536),
        refuses("Image has 65536 bitmaps, exceeding the QEMU supported maximum of 65535")),
    Row("bitmap-dir-too-large", "error", "bitmaps", ext_field("bitmap_directory_size", lambda v: 67107841),
        refuses("bitmap directory size (67107841) exceeds the maximum supported size (67107840)")),
    Row("bitmap-dir-size-zero", "error", "bitmaps", ext_field("bitmap_directory_size", lambda v: 0),
        refuses("Requested bitmap directory size is zero")),
    Row("bitmap-dir-size-mismatch", "error", "bitmaps", ext_field("bitmap_directory_size", lambda v: v + 8),
        refuses("Broken bitmap directory"), "slack"),
    Row("bitmap-dir-size-mismatch", "error", "bitmaps", ext_field("bitmap_directory_size", lambda v: v - 16),
        refuses("Broken bitmap directory"), "entry-crosses-end"),
    Row("bitmap-count-mismatch", "error", "bitmaps", ext_field("nb_bitmaps", lambda v: v - 1),
        refuses("More bitmaps found than specified in header extension"), "more"),
    Row("bitmap-count-mismatch", "error", "bitmaps", ext_field("nb_bitmaps", lambda v: v + 1),
        refuses("Less bitmaps found than specified in header extension"), "less"),
    Row("bitmap-dir-out-of-file", "error", "bitmaps", patch_dir_out_of_file,
        refuses("Bitmap '' doesn't satisfy the constraints")),
    # --- header and version --------------------------------------------------
    Row("autoclear-bitmaps-without-ext", "error", "v3", patch_autoclear_without_ext,
        QemuExpect("check", 0, "No errors were found")),
    Row("bitmaps-ext-without-autoclear", "warning", "bitmaps", patch_ext_without_autoclear,
        QemuExpect("info", 0, "a program lacking bitmap support modified this file")),
    Row("bitmaps-in-v2", "warning", "bitmaps", patch_bitmaps_in_v2,
        QemuExpect("info", 0, "This qcow2 v2 image contains bitmaps")),
    # --- directory entries ---------------------------------------------------
    Row("bitmap-name-empty", "error", "bitmaps", patch_name_empty, QemuExpect("info", 0, '"name": ""')),
    Row("bitmap-name-too-long", "error", "bitmaps", patch_name_too_long, refuses(CONSTRAINTS)),
    Row("bitmap-name-duplicate", "error", "bitmaps", patch_name_duplicate(),
        refuses("Bitmap already exists: bm0")),
    Row("bitmap-name-duplicate", "error", "bitmaps", patch_name_duplicate(in_use=True),
        QemuExpect("info", 0, '"name": "bm0"'), "in-use-skipped-by-qemu"),
    Row("bitmap-type-invalid", "error", "bitmaps", entry_field(1, "type", lambda v: 2),
        refuses("Bitmap 'bm1' doesn't satisfy the constraints"), "2"),
    Row("bitmap-type-invalid", "error", "bitmaps", entry_field(0, "type", lambda v: 0),
        refuses("Bitmap 'bm0' doesn't satisfy the constraints"), "0"),
    Row("bitmap-granularity-range", "error", "bitmaps", entry_field(1, "granularity_bits", lambda v: 32),
        refuses(CONSTRAINTS), "32"),
    Row("bitmap-granularity-range", "error", "bitmaps", entry_field(1, "granularity_bits", lambda v: 8),
        refuses(CONSTRAINTS), "8"),
    Row("bitmap-granularity-range", "error", "bitmaps", entry_field(1, "granularity_bits", lambda v: 64),
        refuses(CONSTRAINTS), "64-spec-reading", "rules:\n  bitmap-granularity-range: {reading: spec}\n"),
    Row("bitmap-flag-extra-data-compatible", "error", "bitmaps",
        entry_field(1, "flags", lambda v: v | EXTRA_DATA_COMPATIBLE), refuses(CONSTRAINTS)),
    Row("bitmap-extra-data", "error", "bitmaps", patch_extra_data(), refuses("Bitmap extra data is not supported")),
    Row("bitmap-extra-data", "error", "bitmaps", patch_extra_data(), refuses("Bitmap extra data is not supported"),
        "spec-reading-without-flag", "rules:\n  bitmap-extra-data: {reading: spec}\n"),
    Row("bitmap-table-offset-zero", "error", "bitmaps", entry_field(1, "bitmap_table_offset", lambda v: 0),
        refuses(CONSTRAINTS)),
    Row("bitmap-table-size-zero", "error", "bitmaps", entry_field(1, "bitmap_table_size", lambda v: 0),
        refuses(CONSTRAINTS)),
    Row("bitmap-table-size-too-large", "error", "bitmaps",
        entry_field(1, "bitmap_table_size", lambda v: 0x8000001), refuses(CONSTRAINTS), "entries"),
    Row("bitmap-table-size-too-large", "error", "bitmaps",
        entry_field(1, "bitmap_table_size", lambda v: 0x20000000 // CLUSTER + 1), refuses(CONSTRAINTS), "bytes"),
    Row("bitmap-table-size-wrong", "error", "bitmaps", entry_field(0, "bitmap_table_size", lambda v: v - 1),
        refuses("Bitmap 'bm0' doesn't satisfy the constraints"), "too-small"),
    Row("bitmap-table-size-wrong", "error", "bitmaps", entry_field(0, "bitmap_table_size", lambda v: v + 1),
        refuses("Could not read bitmap 'bm0' from image: Invalid argument"), "too-big"),
    # QEMU ignores the size of an in_use bitmap; in-use: report judges it anyway.
    Row("bitmap-table-size-wrong", "error", "bitmaps",
        entry_field(0, "bitmap_table_size", lambda v: v - 1, flags=AUTO | IN_USE),
        QemuExpect("info", 0, '"in-use"'), "in-use-report", "rules:\n  bitmap-table-size-wrong: {in-use: report}\n"),
    Row("bitmap-table-out-of-file", "error", "bitmaps", patch_table_out_of_file, EOF_CORRUPTION),
    Row("bitmap-data-out-of-file", "error", "bitmaps", patch_data_out_of_file, EOF_CORRUPTION),
    Row("bitmap-tail-bits-nonzero", "warning", "bitmaps-tail", patch_tail_bits(TAIL_LAST_BYTE, 0x08),
        QemuExpect("check", 0, "No errors were found"), "first-tail-bit"),
    Row("bitmap-tail-bits-nonzero", "warning", "bitmaps-tail", patch_tail_bits(CLUSTER - 1, 0x80),
        QemuExpect("check", 0, "No errors were found"), "last-byte-of-cluster"),
    Row("bitmap-in-use", "warning", "bitmaps", entry_field(1, "flags", lambda v: v | IN_USE),
        QemuExpect("info", 0, '"in-use"')),
    # qemu-img check sees the aliasing only as a refcount mismatch on the L1 cluster.
    Row("bitmap-data-shared", "error", "bitmaps", patch_data_shared, QemuExpect("check", 2, "reference=2")),
]


def _first_row_per_rule(rows: list[Row]) -> list[Row]:
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.rule, row)
    return list(first.values())


FIRST_ROW_PER_RULE = _first_row_per_rule(ROWS)


def test_every_rule_has_a_row() -> None:
    """The table covers every rule of this file."""
    assert {row.rule for row in ROWS} == set(MY_RULES)


# ---------------------------------------------------------------------------
# the patched images, linted together
# ---------------------------------------------------------------------------


@dataclass
class Patched:
    """Every row's patched image and where its patch wrote."""

    paths: dict[str, Path] = field(default_factory=dict)
    targets: dict[str, Target] = field(default_factory=dict)


@pytest.fixture(scope="module")
def patched(bases: Bases, tmp_path_factory: pytest.TempPathFactory) -> Patched:
    """Apply every row's patch to its own copy of its base."""
    directory = tmp_path_factory.mktemp("bitmap-rows")
    result = Patched()
    for number, row in enumerate(ROWS):
        path = bases.copy(row.base, directory, f"row{number:02d}.qcow2")
        result.paths[row.id] = path
        result.targets[row.id] = row.patch(ib.Qcow2Image(path))
    return result


def _lint_each(paths: list[Path], *args: str) -> list[dict]:
    """Lint several images in one qcow2lint run; one report per image."""
    report = lint_json(paths, *args)
    assert [image["path"] for image in report["images"]] == [str(p) for p in paths]
    return report["images"]


@pytest.fixture(scope="module")
def reports(patched: Patched, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each row's JSON image report, with the row's configuration."""
    directory = tmp_path_factory.mktemp("bitmap-configs")
    result: dict[str, dict] = {}
    groups: dict[str, list[Row]] = {}
    for row in ROWS:
        groups.setdefault(row.config, []).append(row)
    for number, (config, rows) in enumerate(groups.items()):
        args = ["--config", str(write_config(directory, config, f"c{number}.yaml"))] if config else []
        images = _lint_each([patched.paths[row.id] for row in rows], *args)
        result.update({row.id: image for row, image in zip(rows, images)})
    return result


def _fired(image_report: dict) -> dict[str, list[dict]]:
    return rules_fired({"images": [image_report]})


def _run_qemu(expect: QemuExpect, path: Path) -> subprocess.CompletedProcess[str]:
    if expect.tool == "info":
        argv = ["qemu-img", "info", "-U", "--output=json", "-f", "qcow2", str(path)]
    else:
        argv = ["qemu-img", "check", "-f", "qcow2", str(path)]
    return ib.run_tool(argv, check=False)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_qemu_agrees(row: Row, bases: Bases, patched: Patched) -> None:
    """The recipe makes the defect: QEMU reacts as the catalogue says."""
    clean = _run_qemu(row.qemu, bases.path(row.base))
    assert clean.returncode == 0, f"base {row.base} is not clean:\n{clean.stdout}{clean.stderr}"
    result = _run_qemu(row.qemu, patched.paths[row.id])
    output = result.stdout + result.stderr
    assert result.returncode == row.qemu.returncode, output
    if row.qemu.message is not None:
        assert row.qemu.message in output, output


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.id)
def test_rule_fires(row: Row, reports: dict[str, dict], patched: Patched) -> None:
    """(a) The defect is reported once, with its severity, at the patched field."""
    image = reports[row.id]
    hits = _fired(image).get(row.rule, [])
    assert len(hits) == 1, f"{row.rule} fired {len(hits)} times; all findings:\n{format_findings(image['findings'])}"
    finding, target = hits[0], patched.targets[row.id]
    assert finding["severity"] == row.severity, finding
    assert finding["offset"] == target.offset, f"offset {finding['offset']:#x} != {target.offset:#x}: {finding}"
    assert re.fullmatch(target.location, finding["location"]), f"{finding['location']!r} !~ /{target.location}/"
    assert "internal-error" not in _fired(image), format_findings(image["findings"])


@pytest.fixture(scope="module")
def clean_reports(bases: Bases) -> dict[str, dict]:
    """The JSON image report of every unpatched base, from one run."""
    names = sorted({row.base for row in ROWS})
    return dict(zip(names, _lint_each([bases.path(name) for name in names])))


@pytest.mark.parametrize("row", FIRST_ROW_PER_RULE, ids=lambda r: r.rule)
def test_rule_quiet_on_clean_base(row: Row, clean_reports: dict[str, dict]) -> None:
    """(b) The unpatched base does not fire the rule."""
    fired = _fired(clean_reports[row.base])
    assert row.rule not in fired, format_findings(fired[row.rule])


def test_rules_disabled_in_config(patched: Patched, tmp_path: Path) -> None:
    """(c) ``rules: {NAME: disable}`` silences each rule on its patched images."""
    config = write_config(tmp_path, "rules:\n" + "".join(f"  {name}: disable\n" for name in MY_RULES))
    paths = [patched.paths[row.id] for row in ROWS]
    for row, image in zip(ROWS, _lint_each(paths, "--config", str(config))):
        fired = _fired(image)
        assert row.rule not in fired, f"{row.id}: {format_findings(fired[row.rule])}"


def test_one_rule_disabled_leaves_the_others(patched: Patched, tmp_path: Path) -> None:
    """Disabling one rule by name keeps the rest of the image's findings."""
    row = next(r for r in ROWS if r.rule == "bitmap-dir-size-mismatch" and r.variant == "entry-crosses-end")
    path = patched.paths[row.id]
    config = write_config(tmp_path, f"rules:\n  {row.rule}: disable\n")
    fired = rules_fired(lint_json(path, "--config", str(config)))
    assert row.rule not in fired and "bitmap-count-mismatch" in fired, fired


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------


def _lint_with(path: Path, tmp_path: Path, config: str) -> dict[str, list[dict]]:
    return rules_fired(lint_json(path, "--config", str(write_config(tmp_path, config))))


def _patched_copy(bases: Bases, tmp_path: Path, base: str, patch: Callable[[ib.Qcow2Image], Target]) -> Path:
    path = bases.copy(base, tmp_path, "img.qcow2")
    patch(ib.Qcow2Image(path))
    return path


def test_granularity_spec_reading_accepts_what_qemu_refuses(bases: Bases, tmp_path: Path) -> None:
    """granularity_bits 32: outside QEMU's 9..31 but inside the spec's 0..63."""
    path = _patched_copy(bases, tmp_path, "bitmaps", entry_field(1, "granularity_bits", lambda v: 32))
    assert "bitmap-granularity-range" in rules_fired(lint_json(path))
    assert "bitmap-granularity-range" not in _lint_with(path, tmp_path, "rules:\n  bitmap-granularity-range: {reading: spec}\n")


def test_extra_data_compatible_spec_reading(bases: Bases, tmp_path: Path) -> None:
    """Extra data with flag bit 2: QEMU refuses both, the spec allows both."""
    path = _patched_copy(bases, tmp_path, "bitmaps", patch_extra_data(flags=EXTRA_DATA_COMPATIBLE))
    assert ib.run_tool(["qemu-img", "info", "-U", str(path)], check=False).returncode == 1
    qemu = rules_fired(lint_json(path))
    assert {"bitmap-extra-data", "bitmap-flag-extra-data-compatible"} <= set(qemu), qemu
    spec = _lint_with(
        path, tmp_path,
        "rules:\n  bitmap-extra-data: {reading: spec}\n  bitmap-flag-extra-data-compatible: {reading: spec}\n",
    )  # fmt: skip
    assert not {"bitmap-extra-data", "bitmap-flag-extra-data-compatible"} & set(spec), spec


def test_table_size_wrong_skips_in_use_bitmaps_by_default(bases: Bases, tmp_path: Path) -> None:
    """QEMU opens an in_use bitmap with a wrong table size; by default only
    bitmap-in-use reports it."""
    path = _patched_copy(bases, tmp_path, "bitmaps", entry_field(0, "bitmap_table_size", lambda v: v + 1, flags=IN_USE))
    assert ib.run_tool(["qemu-img", "info", "-U", str(path)], check=False).returncode == 0
    fired = rules_fired(lint_json(path))
    assert "bitmap-table-size-wrong" not in fired and "bitmap-in-use" in fired, fired
    reported = _lint_with(path, tmp_path, "rules:\n  bitmap-table-size-wrong: {in-use: report}\n")
    assert "in use" in reported["bitmap-table-size-wrong"][0]["message"]


def test_unknown_reading_is_a_clear_error(bases: Bases, tmp_path: Path) -> None:
    """An option value outside the documented choices is reported, naming them."""
    path = _patched_copy(bases, tmp_path, "bitmaps", entry_field(1, "granularity_bits", lambda v: 32))
    fired = _lint_with(path, tmp_path, "rules:\n  bitmap-granularity-range: {reading: posix}\n")
    messages = [f["message"] for f in fired.get("internal-error", [])]
    assert any("'reading'" in m and "'qemu'" in m and "'spec'" in m and "'posix'" in m for m in messages), fired


# ---------------------------------------------------------------------------
# QEMU's behaviour the docs rely on
# ---------------------------------------------------------------------------


def test_bitmap_bit_order_is_lsb_first(bases: Bases) -> None:
    """QEMU stores bit n in bit n % 8 of byte n / 8: the tail base's last bit
    (1602) is bit 2 of byte 200."""
    img = ib.Qcow2Image(bases.path("bitmaps-tail"))
    bitmap = img.bitmap("tail")
    assert bitmap.fields["granularity_bits"] == 16 and bitmap.fields["bitmap_table_size"] == 1
    data = img.read_bytes(bitmap.table[0] & ib.BME_TABLE_OFFSET_MASK, CLUSTER)
    assert TAIL_BITS == -(-TAIL_SIZE // CLUSTER)
    assert data[TAIL_LAST_BYTE] == 1 << ((TAIL_BITS - 1) % 8)
    assert not any(data[:TAIL_LAST_BYTE]) and not any(data[TAIL_LAST_BYTE + 1 :])


def test_autoclear_without_ext_makes_the_first_write_fail(bases: Bases, tmp_path: Path) -> None:
    """qemu-img check is silent, but QEMU then refuses a guest write and marks
    the image corrupt (catalogue §4 item 4)."""
    path = _patched_copy(bases, tmp_path, "v3", patch_autoclear_without_ext)
    write = ib.run_tool(["qemu-io", "-c", "write 0 4096", "-f", "qcow2", str(path)], check=False)
    assert "overlaps with bitmap directory" in write.stdout + write.stderr
    info = ib.run_tool(["qemu-img", "info", "-U", "--output=json", str(path)])
    assert json.loads(info.stdout)["format-specific"]["data"]["corrupt"] is True


def test_ext_without_autoclear_leaks_the_bitmap_clusters(bases: Bases, tmp_path: Path) -> None:
    """With autoclear bit 0 clear, qemu-img check counts the bitmaps' clusters as leaked."""
    path = _patched_copy(bases, tmp_path, "bitmaps", patch_ext_without_autoclear)
    check = ib.qemu_check(path)
    assert check.returncode == 3 and "leaked clusters" in check.output, check.output


def test_documented_repair_of_a_refused_image(bases: Bases, tmp_path: Path) -> None:
    """The repair the entry rules document: `qemu-img bitmap --remove` fails on
    an image QEMU refuses, but clearing autoclear bit 0 and running
    `qemu-img check -r leaks` drops the bitmaps and leaves a clean image."""
    path = _patched_copy(bases, tmp_path, "bitmaps", entry_field(1, "type", lambda v: 2))
    assert ib.run_tool(["qemu-img", "bitmap", "--remove", str(path), "bm1"], check=False).returncode == 1
    ib.Qcow2Image(path).set_header("autoclear_features", 0)
    assert ib.run_tool(["qemu-img", "check", "-r", "leaks", str(path)], check=False).returncode == 0
    assert ib.qemu_check(path).returncode == 0
    found = lint_json(path)["images"][0]["findings"]
    assert not [f for f in found if f["severity"] != "info"], format_findings(found)


# ---------------------------------------------------------------------------
# several defects at once; clean images
# ---------------------------------------------------------------------------


def test_many_bitmap_defects_in_one_image(bases: Bases, tmp_path: Path) -> None:
    """An image QEMU refuses for several bitmap reasons gets every finding in one run."""
    path = bases.copy("bitmaps", tmp_path, "multi.qcow2")
    img = ib.Qcow2Image(path)
    expected = {
        "bitmap-type-invalid": entry_field(0, "type", lambda v: 0)(img),
        "bitmap-flag-extra-data-compatible": entry_field(0, "flags", lambda v: v | EXTRA_DATA_COMPATIBLE)(img),
        "bitmap-granularity-range": entry_field(1, "granularity_bits", lambda v: 40)(img),
        "bitmap-table-offset-zero": entry_field(1, "bitmap_table_offset", lambda v: 0)(img),
        "bitmap-data-out-of-file": patch_data_out_of_file(img),
        "bitmap-count-mismatch": ext_field("nb_bitmaps", lambda v: v + 1)(img),
    }
    info = ib.run_tool(["qemu-img", "info", "-U", str(path)], check=False)
    assert info.returncode == 1, info.stdout  # QEMU names only the first reason
    report = lint_json(path)
    fired = rules_fired(report)
    missing = set(expected) - set(fired)
    assert not missing, f"missing {missing}; got:\n{format_findings(report['images'][0]['findings'])}"
    for rule, target in expected.items():
        assert len(fired[rule]) == 1, format_findings(fired[rule])
        assert fired[rule][0]["offset"] == target.offset, fired[rule]
        assert re.fullmatch(target.location, fired[rule][0]["location"]), fired[rule]
    assert report["_returncode"] == 1


def _clean_bitmaps(directory: Path, size: int, cluster_size: int, bitmaps: dict[str, int]) -> Path:
    path = ib.create(directory / f"clean-{cluster_size}-{size}.qcow2", size, {"cluster_size": cluster_size})
    for name, granularity in bitmaps.items():
        ib.bitmap_add(path, name, granularity=granularity)
    ib.qemu_io(path, f"write -P 0x11 0 {cluster_size}", f"write -P 0x22 {size // 512 * 512 - 4096} 4096")
    ib.bitmap_add(path, "disabled", disabled=True)
    return path


@pytest.mark.parametrize(
    "size, cluster_size, bitmaps",
    [
        (TAIL_SIZE + 1000, 64 * 1024, {"g512": 512, "g64k": 64 * 1024, "g2g": 1 << 31}),
        (3 * MIB + 512, 512, {"small": 512, "big": 1 << 20}),
        (40 * MIB, 2 * MIB, {"a": 4096, "b": 2 * MIB}),
    ],
    ids=["64K-odd-size", "512-clusters", "2M-clusters"],
)
def test_clean_bitmap_images_are_quiet(tmp_path: Path, size: int, cluster_size: int, bitmaps: dict[str, int]) -> None:
    """Real images with bitmaps made by qemu-img fire none of these rules."""
    path = _clean_bitmaps(tmp_path, size, cluster_size, bitmaps)
    assert ib.qemu_check(path).returncode == 0
    report = lint_json(path)
    mine = [f for f in report["images"][0]["findings"] if f["rule"] in MY_RULES]
    assert not mine, format_findings(mine)


def test_documented_repair_of_data_out_of_file(bases: Bases, tmp_path: Path) -> None:
    """QEMU opens an image whose bitmap data lies past the end of the file:
    `qemu-img bitmap --remove` then `qemu-img check -r leaks` repair it."""
    path = _patched_copy(bases, tmp_path, "bitmaps", patch_data_out_of_file)
    assert ib.run_tool(["qemu-img", "bitmap", "--remove", str(path), "bm0"], check=False).returncode == 0
    assert ib.run_tool(["qemu-img", "check", "-r", "leaks", str(path)], check=False).returncode == 0
    assert ib.qemu_check(path).returncode == 0
    found = lint_json(path)["images"][0]["findings"]
    assert not [f for f in found if f["severity"] != "info"], format_findings(found)
