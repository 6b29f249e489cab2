"""Golden tests for ``qcow2lint dump`` / ``dump --json`` (the format of docs/dump.md).

1. Every example in ``tests/data/dump-examples`` (real images with the exact
   output of QEMU's ``qcow2.py``): gunzipped, made read-only, dumped in text
   and JSON; stdout must equal the expected file byte for byte, exit 0, empty
   stderr. The dump runs without CAP_DAC_OVERRIDE (see harness.run_cli), so a
   read-write open of the 0444 file would fail even though the tests run as
   root.

2. Goldens of our own under ``tests/golden/``, for images built here with
   qemu-img 7.2 (recipes in :data:`GOLDEN_RECIPES`). How they were derived: the
   field values were read from the freshly built images with the test-side
   parser ``tests/imagebuilder.py`` (independent of qcow2lint) and written out
   following the rules of DUMP-FORMAT.md (field order, ``{name:<25} {value}``,
   hex for offsets/magic/backing_file_size, bit lists for the feature
   fields, extension ``data`` quoting by ``string.printable``, the bitmap
   table layout, ``json.dumps(indent=4)`` documents separated by a blank
   line), then checked line by line against the structure of the shared
   examples. ``test_own_golden_matches_image`` re-derives every header,
   extension and bitmap value of the JSON goldens from the image with the
   test parser, so a change in QEMU's allocation (another qemu-img version)
   is reported as such rather than as a qcow2lint bug.
   ``pytest --update-goldens`` rewrites these files from qcow2lint's output.

3. Broken inputs where QEMU's script would crash: exit 2, one stderr line,
   no traceback, and stdout holds only correct lines of what could be read.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import string
from collections.abc import Callable
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import GOLDEN_DIR, CliResult, assert_one_line_error, run_cli, run_cli_bytes

EXAMPLES_DIR = Path(__file__).resolve().parent / "data" / "dump-examples"
MIB = 1 << 20


def _example_names() -> list[str]:
    names = sorted(p.name[: -len(".qcow2.gz")] for p in EXAMPLES_DIR.glob("*.qcow2.gz"))
    # A missing folder must fail the run, not leave an empty (skipped) parameter set.
    return names or ["<no examples found>"]


def _gunzip_readonly(gz: Path, directory: Path) -> Path:
    """Unpack ``gz`` into ``directory`` and make the image 0444."""
    img = directory / gz.name[: -len(".gz")]
    with gzip.open(gz, "rb") as src, open(img, "wb") as dst:
        shutil.copyfileobj(src, dst)
    img.chmod(0o444)
    return img


def _dump_args(mode: str) -> list[str]:
    return ["dump"] if mode == "dump" else ["dump", "--json"]


def test_examples_folder_present() -> None:
    """The vendored examples exist and every image has its .dump and .json."""
    assert EXAMPLES_DIR.is_dir(), f"missing {EXAMPLES_DIR}"
    images = sorted(EXAMPLES_DIR.glob("*.qcow2.gz"))
    assert images, f"no *.qcow2.gz in {EXAMPLES_DIR}"
    for gz in images:
        stem = gz.name[: -len(".qcow2.gz")]
        for suffix in (".dump", ".json"):
            assert (EXAMPLES_DIR / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"


@pytest.mark.parametrize("mode", ["dump", "json"])
@pytest.mark.parametrize("name", _example_names())
def test_shared_example(name: str, mode: str, tmp_path: Path) -> None:
    """``qcow2lint dump [--json]`` reproduces QEMU's qcow2.py output byte for byte."""
    gz = EXAMPLES_DIR / f"{name}.qcow2.gz"
    assert gz.is_file(), f"{gz} missing (the vendored dump examples, tests/data/dump-examples)"
    expected = (EXAMPLES_DIR / f"{name}.{mode}").read_bytes()
    img = _gunzip_readonly(gz, tmp_path)
    before = img.read_bytes()
    rc, out, err = run_cli_bytes(*_dump_args(mode), img, unprivileged=True)
    assert err == b"", err.decode(errors="replace")
    assert rc == 0
    assert out.decode(errors="replace") == expected.decode(errors="replace")
    assert out == expected
    assert img.read_bytes() == before


# ---------------------------------------------------------------------------
# goldens of our own
# ---------------------------------------------------------------------------


def _golden_v2(directory: Path) -> Path:
    path = ib.create(directory / "v2.qcow2", 16 * MIB, {"compat": "0.10"})
    ib.write(path, 0, 64 * 1024)
    return path


def _golden_snapshot(directory: Path) -> Path:
    path = ib.create(directory / "snap.qcow2", 16 * MIB)
    ib.write(path, 0, 64 * 1024)
    ib.snapshot_create(path, "s1")
    ib.write(path, 64 * 1024, 64 * 1024, 0x22)
    return path


def _golden_bitmaps(directory: Path) -> Path:
    path = ib.create(directory / "bm.qcow2", 16 * MIB)
    ib.bitmap_add(path, "bm0")
    ib.bitmap_add(path, "off", disabled=True)
    ib.write(path, 0, 64 * 1024)
    return path


def _golden_unknown_ext(directory: Path) -> Path:
    path = ib.create(directory / "unk.qcow2", 16 * MIB)
    img = ib.Qcow2Image(path)
    # printable with raw control characters (\t, \x0b), binary, and empty
    img.add_extension(0x12345678, b"x\ty\x0bz")
    img.add_extension(0xCAFE0001, b"\x00\x01\x02")
    img.add_extension(0x0000BEEF, b"")
    return path


GOLDEN_RECIPES: dict[str, Callable[[Path], Path]] = {
    "v2-compat010": _golden_v2,
    "snapshot": _golden_snapshot,
    "bitmaps-disabled": _golden_bitmaps,
    "unknown-extensions": _golden_unknown_ext,
}

_EXT_NAMES = {
    ib.EXT_BACKING_FORMAT: "Backing format",
    ib.EXT_FEATURE_TABLE: "Feature table",
    ib.EXT_CRYPTO: "Crypto header",
    ib.EXT_BITMAPS: "Bitmaps",
    ib.EXT_DATA_FILE: "Data file",
}
_JSON_HEADER_KEYS = [
    "magic",
    "version",
    "backing_file_offset",
    "backing_file_size",
    "cluster_bits",
    "size",
    "crypt_method",
    "l1_size",
    "l1_table_offset",
    "refcount_table_offset",
    "refcount_table_clusters",
    "nb_snapshots",
    "snapshot_offset",
    "incompatible_features",
    "compatible_features",
    "autoclear_features",
    "refcount_order",
    "header_length",
]


@pytest.mark.parametrize("name", sorted(GOLDEN_RECIPES))
def test_own_golden_matches_image(name: str, tmp_path: Path) -> None:
    """The stored golden agrees with the image qemu-img builds (checked with the test parser)."""
    path = GOLDEN_RECIPES[name](tmp_path)
    assert ib.qemu_check(path).returncode == 0
    img = ib.Qcow2Image(path)
    header_doc, ext_doc = (GOLDEN_DIR / f"{name}.json").read_text().split("\n\n", 1)
    header = json.loads(header_doc)
    assert list(header) == _JSON_HEADER_KEYS
    parsed = dict(img.header, snapshot_offset=img.header["snapshots_offset"])
    assert header == {k: parsed[k] for k in _JSON_HEADER_KEYS}
    exts = json.loads(ext_doc)
    assert [(e["name"], e["magic"], e["length"]) for e in exts] == [
        (_EXT_NAMES.get(e.type, "<unknown>"), e.type, e.length) for e in img.extensions
    ]
    for golden_ext, ext in zip(exts, img.extensions):
        if ext.type == ib.EXT_BITMAPS:
            directory = golden_ext["data"]["bitmap_directory"]
            assert [d["name"] for d in directory] == [b.name.decode() for b in img.bitmaps]
            for d, b in zip(directory, img.bitmaps):
                assert {k: d[k] for k in ib.BITMAP_DIR_FIELDS} == b.fields
                assert [e["offset"] for e in d["bitmap_table"]] == [t & ib.BME_TABLE_OFFSET_MASK for t in b.table]
        else:
            data = ext.data[: ext.length]
            printable = all(chr(c) in string.printable for c in data)
            assert golden_ext["data_str"] == (f"'{data.decode()}'" if printable else "<binary>")
    # the text golden carries the same header values
    text = (GOLDEN_DIR / f"{name}.dump").read_text().splitlines()
    assert text[1] == f"{'version':<25} {header['version']}"
    assert text[12] == f"{'snapshot_offset':<25} {header['snapshot_offset']:#x}"


@pytest.mark.parametrize("mode", ["dump", "json"])
@pytest.mark.parametrize("name", sorted(GOLDEN_RECIPES))
def test_own_golden(name: str, mode: str, tmp_path: Path, update_goldens: bool) -> None:
    """``qcow2lint dump`` of images made here matches tests/golden/ (or rewrites it)."""
    path = GOLDEN_RECIPES[name](tmp_path)
    path.chmod(0o444)
    golden = GOLDEN_DIR / f"{name}.{mode}"
    rc, out, err = run_cli_bytes(*_dump_args(mode), path, unprivileged=True)
    assert err == b"", err.decode(errors="replace")
    assert rc == 0
    if update_goldens:
        golden.write_bytes(out)
        return
    assert out.decode(errors="replace") == golden.read_text()
    assert out == golden.read_bytes()


# ---------------------------------------------------------------------------
# broken inputs: QEMU's script would crash here
# ---------------------------------------------------------------------------

HEADER_LINES = 18  # the 18 header field lines (blank lines at the end are not counted)


def _golden_lines() -> list[str]:
    return (GOLDEN_DIR / "bitmaps-disabled.dump").read_text().splitlines()


def _assert_partial_dump(result: CliResult, expected: list[str], must_have: int) -> None:
    """Exit 2, one stderr line, and stdout = the first lines of ``expected``
    (at least ``must_have`` of them: what certainly could be read)."""
    assert_one_line_error(result)
    lines = result.stdout.splitlines()
    # A partial dump may close its last block with blank lines; every other
    # line must be exactly the line the full dump has at that position.
    while lines and not lines[-1].strip():
        lines.pop()
    assert len(lines) >= must_have, f"expected at least {must_have} lines of dump, got:\n{result.stdout}"
    assert lines == expected[: len(lines)], (
        f"stdout is not a prefix of the full dump:\n{result.stdout}\n--- full dump ---\n" + "\n".join(expected)
    )


@pytest.fixture(scope="module")
def bitmaps_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bitmaps-disabled golden image, built once for the broken-input tests."""
    return _golden_bitmaps(tmp_path_factory.mktemp("broken-dump"))


def _broken_copy(bitmaps_image: Path, tmp_path: Path) -> ib.Qcow2Image:
    dst = tmp_path / "broken.qcow2"
    shutil.copyfile(bitmaps_image, dst)
    return ib.Qcow2Image(dst)


# length -> how many golden lines must certainly be printed
TRUNCATIONS = {
    0: 0,
    50: 0,  # not even the 104-byte header
    100: 0,
    104: HEADER_LINES,  # header complete, extensions at 112 missing
    200: HEADER_LINES,  # inside the feature table
    600: HEADER_LINES,  # all extensions there, bitmap directory missing
}


@pytest.mark.parametrize("length", sorted(TRUNCATIONS))
def test_dump_truncated(length: int, bitmaps_image: Path, tmp_path: Path) -> None:
    """A truncated image: partial dump, one error line, exit 2 (text and JSON)."""
    img = _broken_copy(bitmaps_image, tmp_path)
    img.truncate(length)
    _assert_partial_dump(run_cli("dump", img.path), _golden_lines(), TRUNCATIONS[length])
    assert_one_line_error(run_cli("dump", "--json", img.path))


def test_dump_truncated_inside_bitmap_directory(bitmaps_image: Path, tmp_path: Path) -> None:
    """The directory is cut after the first entry's fields."""
    img = _broken_copy(bitmaps_image, tmp_path)
    dir_offset = img.ext_field_offset(ib.EXT_BITMAPS, "bitmap_directory_offset")
    img.truncate(img.read_int(dir_offset, "Q") + 40)
    _assert_partial_dump(run_cli("dump", img.path), _golden_lines(), HEADER_LINES)
    assert_one_line_error(run_cli("dump", "--json", img.path))


def test_dump_bitmap_table_past_eof(bitmaps_image: Path, tmp_path: Path) -> None:
    """The last bitmap's table lies past the end of the file."""
    img = _broken_copy(bitmaps_image, tmp_path)
    img.set_bitmap_field("off", "bitmap_table_offset", 0x10000000)
    expected = [
        f"{'bitmap_table_offset':<25} 0x10000000" if line == f"{'bitmap_table_offset':<25} 0xb0000" else line
        for line in _golden_lines()
    ]
    # everything up to the heading of the missing table could be read
    heading = max(i for i, line in enumerate(expected) if line.startswith("Bitmap table"))
    _assert_partial_dump(run_cli("dump", img.path), expected, heading)
    assert_one_line_error(run_cli("dump", "--json", img.path))


def test_dump_non_ascii_bitmap_name(bitmaps_image: Path, tmp_path: Path) -> None:
    """A bitmap name that is not ASCII (qcow2.py decodes names as ASCII and dies)."""
    img = _broken_copy(bitmaps_image, tmp_path)
    entry = img.bitmap("off")
    img.write_bytes(entry.padding_offset - entry.fields["name_size"], b"o\xe9f")
    for args in (["dump"], ["dump", "--json"]):
        result = run_cli(*args, img.path)
        assert_one_line_error(result)
        if args == ["dump"]:
            assert result.stdout.splitlines()[:HEADER_LINES] == _golden_lines()[:HEADER_LINES]


def test_dump_header_length_past_eof(bitmaps_image: Path, tmp_path: Path) -> None:
    """header_length points past the end of a (short) file but inside cluster 0."""
    img = _broken_copy(bitmaps_image, tmp_path)
    img.set_header("header_length", 8192)
    img.truncate(4096)
    expected = _golden_lines()
    expected[17] = f"{'header_length':<25} 8192"
    _assert_partial_dump(run_cli("dump", img.path), expected, HEADER_LINES)
    assert_one_line_error(run_cli("dump", "--json", img.path))


def test_dump_missing_file(tmp_path: Path) -> None:
    """A path that does not exist: exit 2, one line, nothing on stdout."""
    result = run_cli("dump", tmp_path / "nope.qcow2")
    assert_one_line_error(result)
    assert result.stdout == ""


def test_dump_leaves_file_unchanged(bitmaps_image: Path, tmp_path: Path) -> None:
    """Dumping never writes: content and mtime are unchanged."""
    img = _broken_copy(bitmaps_image, tmp_path)
    os.utime(img.path, (1_000_000_000, 1_000_000_000))
    before = (img.path.read_bytes(), img.path.stat().st_mtime_ns, stat.S_IMODE(img.path.stat().st_mode))
    for args in (["dump"], ["dump", "--json"]):
        assert run_cli(*args, img.path).returncode == 0
    after = (img.path.read_bytes(), img.path.stat().st_mtime_ns, stat.S_IMODE(img.path.stat().st_mode))
    assert before == after
