"""The dump's work and output are bounded whatever the image says (issue 9):
a hostile cluster_bits stops the extension walk where QEMU's largest
extension area ends, and long lists print one line saying how many entries
were left out."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import imagebuilder as ib
import pytest

from qcow2lint.report import dump as dump_module
from qcow2lint.report.dump import (
    MAX_DUMPED_BITMAPS,
    MAX_DUMPED_EXTENSIONS,
    MAX_DUMPED_TABLE_ENTRIES,
    MAX_EXTENSION_AREA_END,
    build_dump,
)

#: Output of any dump stays under this (issue 9: "at most a few MiB").
FEW_MIB = 8 << 20


def _json_parts(text: str) -> tuple[dict, list]:
    header, extensions = text.split("\n\n", 1)
    return json.loads(header), json.loads(extensions)


@pytest.fixture(scope="module")
def hostile_cluster_bits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cluster_bits 40 and 3 MiB of empty unknown extensions after the header."""
    path = ib.create(tmp_path_factory.mktemp("dump") / "bits.qcow2", "1M")
    img = ib.Qcow2Image(path)
    framing = struct.pack(">II", 0x12345678, 0)
    img.write_bytes(img.header_length, framing * ((3 << 20) // 8))
    img.set_header("cluster_bits", 40)
    return path


def test_hostile_cluster_bits_stops_at_the_largest_extension_area(hostile_cluster_bits: Path) -> None:
    result = build_dump(str(hostile_cluster_bits))
    assert "cluster_bits 40 is outside QEMU's range 9..21" in result.error
    assert len(result.text) < FEW_MIB
    walked = (MAX_EXTENSION_AREA_END - 112) // 8
    assert result.text.count("Header extension:") == MAX_DUMPED_EXTENSIONS
    omitted = walked - MAX_DUMPED_EXTENSIONS
    assert result.text.endswith(
        f"... {omitted} more header extensions not shown (qcow2lint dumps at most {MAX_DUMPED_EXTENSIONS})\n\n"
    )
    result = build_dump(str(hostile_cluster_bits), as_json=True)
    assert len(result.text) < FEW_MIB
    _, extensions = _json_parts(result.text)
    assert len(extensions) == MAX_DUMPED_EXTENSIONS + 1
    assert extensions[-1] == {"name": "<omitted>", "omitted": omitted}


def test_an_extension_longer_than_the_area_stops_the_walk(tmp_path: Path) -> None:
    path = ib.create(tmp_path / "long.qcow2", "1M")
    img = ib.Qcow2Image(path)
    img.write_bytes(img.header_length, struct.pack(">II", 0x12345678, 0xFFFFFFF0))
    img.truncate(4 << 20)
    img.set_header("cluster_bits", 30)
    result = build_dump(str(path))
    assert "its data runs past 0x200000" in result.error
    assert len(result.text) < 4096


@pytest.fixture(scope="module")
def many_bitmaps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 bitmaps, every one naming the same 1 MiB bitmap table."""
    path = ib.create(tmp_path_factory.mktemp("dump") / "bitmaps.qcow2", "1M", {"cluster_size": 4096})
    ib.bitmap_add(path, "b")
    img = ib.Qcow2Image(path)
    count, table_entries = MAX_DUMPED_BITMAPS + 904, 1 << 17
    table_at = 1 << 20
    directory_at = table_at + table_entries * 8
    entry = struct.pack(">QIIBBHI", table_at, table_entries, 0, 1, 16, 1, 0) + b"b" + bytes(7)
    img.write_bytes(directory_at, entry * count)
    img.set_ext_field(ib.EXT_BITMAPS, "nb_bitmaps", count)
    img.set_ext_field(ib.EXT_BITMAPS, "bitmap_directory_size", len(entry) * count)
    img.set_ext_field(ib.EXT_BITMAPS, "bitmap_directory_offset", directory_at)
    return path


def test_long_bitmap_tables_and_directories_are_cut_with_one_line(many_bitmaps: Path) -> None:
    result = build_dump(str(many_bitmaps))
    text = result.text
    assert result.error is None
    assert len(text) < FEW_MIB
    assert text.count("Bitmap name") == MAX_DUMPED_BITMAPS
    rows = [line for line in text.splitlines() if line[:1].isdigit()]
    assert len(rows) == MAX_DUMPED_TABLE_ENTRIES
    first = (1 << 17) - MAX_DUMPED_TABLE_ENTRIES
    limit = f"(qcow2lint dumps at most {MAX_DUMPED_TABLE_ENTRIES})"
    assert text.count(f"... {first} more bitmap table entries not shown {limit}\n") == 1
    assert text.count(f"... {1 << 17} more bitmap table entries not shown {limit}\n") == MAX_DUMPED_BITMAPS - 1
    assert f"\n... 904 more bitmap directory entries not shown (qcow2lint dumps at most {MAX_DUMPED_BITMAPS})\n" in text

    result = build_dump(str(many_bitmaps), as_json=True)
    assert result.error is None and len(result.text) < FEW_MIB
    _, extensions = _json_parts(result.text)
    data = next(ext["data"] for ext in extensions if ext["name"] == "Bitmaps")
    assert data["bitmap_directory_omitted"] == 904
    directory = data["bitmap_directory"]
    assert len(directory) == MAX_DUMPED_BITMAPS
    assert sum(len(entry["bitmap_table"]) for entry in directory) == MAX_DUMPED_TABLE_ENTRIES
    assert directory[0]["bitmap_table_omitted"] == first
    assert all(entry["bitmap_table_omitted"] == 1 << 17 for entry in directory[1:])


def test_running_out_of_memory_names_the_structure(many_bitmaps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MemoryError (stood in for by raising one) becomes the dump's error,
    with a message: never ``internal error: MemoryError:`` and nothing else."""

    def exhausted(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(dump_module._Walker, "bitmap_directory", exhausted)
    result = build_dump(str(many_bitmaps))
    assert result.text == ""
    assert result.error.startswith("out of memory (MemoryError) while dumping header extension ")


def test_long_names_and_extension_data_are_cut(tmp_path: Path) -> None:
    """A 65535-byte bitmap name shows QEMU's 1023 bytes and how many more;
    printable extension data shows 256 KiB and how many more."""
    path = ib.create(tmp_path / "names.qcow2", "1M", {"cluster_size": 2 << 20})
    ib.bitmap_add(path, "b")
    img = ib.Qcow2Image(path)
    directory_at = img.file_size
    name = b"n" * 65535
    entry = struct.pack(">QIIBBHI", 0, 0, 0, 1, 16, len(name), 0) + name
    img.write_bytes(directory_at, entry + bytes(-len(entry) % 8))
    img.set_ext_field(ib.EXT_BITMAPS, "bitmap_directory_offset", directory_at)
    img.set_ext_field(ib.EXT_BITMAPS, "bitmap_directory_size", len(entry) + (-len(entry) % 8))
    data = b"d" * (300 << 10)
    area = struct.pack(">II", 0x12345678, len(data)) + data + bytes(8)
    bitmaps = img.extension(ib.EXT_BITMAPS)
    img.write_bytes(bitmaps.offset + 8 + 24, area)  # replaces what follows the bitmaps extension
    result = build_dump(str(path))
    assert f"Bitmap name               {'n' * 1023}...(+{65535 - 1023} bytes)\n" in result.text
    assert f"data                      '{'d' * (256 << 10)}'...(+{(300 - 256) << 10} bytes)\n" in result.text
    assert len(result.text) < 1 << 20
    _, extensions = _json_parts(build_dump(str(path), as_json=True).text)
    assert extensions[-1]["data_str"].endswith(f"'...(+{(300 - 256) << 10} bytes)")
