"""Issue 9's cost model, enforced: what a hostile count or a sparse file may
cost.  Behaviour and memory are asserted (memory through RLIMIT_AS in a
subprocess), never timings."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

import imagebuilder as ib
import numpy as np
import pytest
from harness import run_cli_peak_rss

from qcow2lint import spec
from qcow2lint.config import load_config
from qcow2lint.engine import lint_path
from qcow2lint.reader import open_image
from qcow2lint.registry import load_registry

TIB = 1 << 40
MB = 1_000_000


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bounds") / "plain.qcow2"
    ib.create(path, 64 << 20, {"cluster_size": 65536})
    ib.write(path, 0, 65536, 0x11)
    return path


def _sparse_copy(source: Path, target: Path, size: int, patches: dict[int, tuple[str, int]] | None = None) -> Path:
    data = bytearray(source.read_bytes())
    for offset, (fmt, value) in (patches or {}).items():
        struct.pack_into(fmt, data, offset, value)
    target.write_bytes(data)
    os.truncate(target, size)
    return target


def _check_peak_rss(path: Path, *options: str) -> tuple[int, str, int]:
    """Run `qcow2lint check --format json --statistics` in a child: exit
    code, output and the child's own peak RSS in bytes."""
    child, peak = run_cli_peak_rss(
        path.with_suffix(".peak"), "check", "--format", "json", "--statistics", *options, path
    )
    return child.returncode, child.stdout + child.stderr, peak


@pytest.mark.parametrize(
    "name, patches, budget",
    [
        ("valid", {}, 150 * MB),
        # QEMU's caps: a 32 MiB L1 table, an 8 MiB refcount table.
        ("huge-l1-size", {36: (">I", 1 << 28)}, 300 * MB),
        # The 8 MiB read holds the L1 table and a refcount block, whose
        # offsets make reftable entries at high indices: the stored and the
        # rebuilt refcounts then span the clusters those blocks cover (2
        # bytes each) -- hundreds of MB for 10 TiB, not GBs.
        ("huge-reftable", {56: (">I", 0xFFFFFFFF)}, 1000 * MB),
    ],
)
def test_a_sparse_10_tib_file_costs_what_it_holds_not_its_apparent_size(
    plain: Path, tmp_path: Path, name: str, patches: dict[int, tuple[str, int]], budget: int
) -> None:
    path = _sparse_copy(plain, tmp_path / f"{name}.qcow2", 10 * TIB, patches)
    # 10 TiB of 64 KiB clusters is 160 M clusters: two bytes per cluster
    # would pass these caps.
    code, output, peak = _check_peak_rss(path)
    assert code in (0, 1), output
    assert "MemoryError" not in output
    assert peak <= budget


def test_the_analysis_arrays_end_with_the_last_block_or_reference(plain: Path, tmp_path: Path) -> None:
    path = _sparse_copy(plain, tmp_path / "sparse.qcow2", 10 * TIB)
    from qcow2lint.passes.refcounts import RefcountPass

    with open_image(path) as image_file:
        analysis = RefcountPass()
        assert analysis.start(image_file)
        for batch in image_file.l2_batches():
            analysis.add(batch)
        check = analysis.finish()
    assert check.compared == 10 * TIB // 65536
    assert len(check.computed) < 1 << 20 and check.stored.length < 1 << 20
    assert check.stats["leaks"] == 0 and check.stats["corruptions"] == 0
    assert len(check.mismatches[0]) == 0


def test_l1_and_refcount_tables_are_read_up_to_qemus_limits(plain: Path, tmp_path: Path) -> None:
    path = _sparse_copy(plain, tmp_path / "caps.qcow2", 10 * TIB, {36: (">I", 1 << 28), 56: (">I", 1 << 20)})
    with open_image(path) as image_file:
        image = image_file.image
        assert image.l1.expected_entries == 1 << 28
        assert len(image.l1.entries) == spec.MAX_L1_SIZE // spec.L1_ENTRY_SIZE
        assert len(image.refcount_table.entries) == spec.MAX_REFTABLE_SIZE // spec.REFTABLE_ENTRY_SIZE


def _names(path: Path, deep: bool = False) -> list[str]:
    registry = load_registry()
    config = load_config(registry, start=path.parent)
    return [f.rule for f in lint_path(path, config, registry, deep=deep).findings]


def test_nb_snapshots_over_qemus_limit_reads_no_entry(plain: Path, tmp_path: Path) -> None:
    """QEMU stops at the count ("Snapshot table too large"): so does the
    reader; snapshot_offset 0 would otherwise walk 65,536 entries of junk."""
    path = tmp_path / "count.qcow2"
    data = bytearray(plain.read_bytes())
    struct.pack_into(">I", data, 60, 0x200000)  # nb_snapshots; snapshot_offset stays 0
    path.write_bytes(data)
    with open_image(path) as image_file:
        assert image_file.image.snapshots is None
        assert image_file.image.snapshot_l1_tables == ()
    assert _names(path) == ["snapshot-count-too-large"]


def test_a_snapshot_table_over_64_mib_reads_no_entry(plain: Path, tmp_path: Path) -> None:
    """Fewer than 65,536 entries, but more than QCOW_MAX_SNAPSHOTS_SIZE:
    QEMU refuses the table and keeps none of it; so does the reader (no
    entry, no L1 table), and snapshot-table-too-big still names the entry
    that crosses the limit."""
    path = tmp_path / "too-big.qcow2"
    data = bytearray(plain.read_bytes())
    l1_offset, l1_size = struct.unpack_from(">Q", data, 40)[0], struct.unpack_from(">I", data, 36)[0]
    start = spec.round_up(len(data), 65536)
    count, name_size = 1030, 65535
    step = spec.round_up(40 + 16 + 8 + name_size, 8)
    # id "%08d", a 65535-byte name left as sparse zeros, 16 bytes of extra data
    fixed = struct.pack(spec.SNAPSHOT_FORMAT, l1_offset, l1_size, 8, name_size, 0, 0, 0, 0, 16)
    with open(path, "wb") as out:
        out.write(data)
        for index in range(count):
            out.seek(start + index * step)
            out.write(fixed + bytes(16) + b"%08d" % index)
        out.truncate(start + count * step)
    with open(path, "r+b") as out:
        out.seek(60)
        out.write(struct.pack(">IQ", count, start))
    with open_image(path) as image_file:
        table = image_file.image.snapshots
        assert table.entries == () and image_file.image.snapshot_l1_tables == ()
        crossing = table.too_big
        assert crossing is not None and crossing.file_offset == start + crossing.index * step
        assert table.too_big_length > spec.MAX_SNAPSHOTS_SIZE
        assert table.too_big_length - (40 + 16 + 8 + name_size) <= spec.MAX_SNAPSHOTS_SIZE
    names = _names(path)
    assert names.count("snapshot-table-too-big") == 1
    assert "snapshot-table-out-of-file" not in names


def _many_bitmaps(tmp_path: Path, count: int) -> Path:
    """``count`` copies of one bitmap directory entry (one shared table)."""
    path = tmp_path / f"bitmaps-{count}.qcow2"
    ib.create(path, 64 << 20, {"cluster_size": 65536})
    subprocess.run(["qemu-img", "bitmap", "--add", str(path), "b0"], check=True)
    data = bytearray(path.read_bytes())
    position = struct.unpack_from(">I", data, 100)[0]
    while struct.unpack_from(">I", data, position)[0] != spec.EXT_BITMAPS:
        position += 8 + spec.round_up(struct.unpack_from(">I", data, position + 4)[0], 8)
    _, _, size, directory = struct.unpack_from(">IIQQ", data, position + 8)
    entry = bytes(data[directory : directory + spec.round_up(size, 8)]).ljust(spec.round_up(size, 8), b"\0")
    end = spec.round_up(len(data), 65536)
    data += bytes(end - len(data)) + entry * count
    struct.pack_into(">IIQQ", data, position + 8, count, 0, len(entry) * count, end)
    path.write_bytes(data)
    return path


def test_bitmaps_naming_one_table_share_one_read(tmp_path: Path) -> None:
    path = _many_bitmaps(tmp_path, 100)
    with open_image(path) as image_file:
        tables = image_file.image.bitmap_tables
        assert len(tables) == 100
        assert len({id(t.entries) for t in tables}) == 1  # one array, shared
        assert not tables[0].entries.flags.writeable


def test_65535_bitmap_entries_stay_small_and_every_duplicate_counts(tmp_path: Path) -> None:
    """QEMU's maximum of bitmap entries (a 2.5 MB file): memory well under
    the 300 MB target, and the duplicate names all counted."""
    path = _many_bitmaps(tmp_path, 65535)
    code, output, peak = _check_peak_rss(path)
    assert code in (0, 1), output
    assert "MemoryError" not in output
    duplicates = [f for f in json.loads(output)["images"][0]["findings"] if f["rule"] == "bitmap-name-duplicate"]
    shown = [f for f in duplicates if not f.get("omitted")]
    assert len(shown) == 100 and len(shown) + duplicates[-1]["omitted"] == 65534
    assert peak <= 300 * MB


def test_snapshots_sharing_one_l1_table_read_it_once(tmp_path: Path) -> None:
    path = _shared_l1_snapshots(tmp_path, 1000, 16)  # 16-bit refcounts: qemu-img's own
    with open_image(path) as image_file:
        tables = image_file.image.snapshot_l1_tables
        assert len(tables) == 1000
        assert len({id(t.entries) for t in tables}) == 1  # one array, shared
        assert not tables[0].entries.flags.writeable


def test_deep_decompresses_each_distinct_payload_once_per_batch(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(os.urandom(512) * 128)
    path = tmp_path / "packed.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    data = bytearray(path.read_bytes())
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2 = struct.unpack_from(">Q", data, l1)[0] & spec.L1E_OFFSET_MASK
    first = bytes(data[l2 : l2 + 8])
    data[l2 : l2 + 8 * 1000] = first * 1000  # 1000 entries name one payload
    struct.pack_into(">Q", data, 24, 1000 * 65536)
    path.write_bytes(data)

    calls = []
    real = zlib.decompressobj

    def counting(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(zlib, "decompressobj", counting)
    names = _names(path, deep=True)
    assert "compressed-undecompressible" not in names
    assert len(calls) == 1


def test_a_broken_payload_is_still_reported_for_every_entry_that_names_it(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.write_bytes(os.urandom(512) * 128)
    path = tmp_path / "broken.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    data = bytearray(path.read_bytes())
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2 = struct.unpack_from(">Q", data, l1)[0] & spec.L1E_OFFSET_MASK
    entry = struct.unpack_from(">Q", data, l2)[0]
    host = entry & ((1 << (62 - 8)) - 1)  # 64 KiB clusters: x = 62 - (16 - 8)
    data[host : host + 16] = b"\xff" * 16  # not a deflate stream
    data[l2 : l2 + 8 * 3] = data[l2 : l2 + 8] * 3
    path.write_bytes(data)
    assert _names(path, deep=True).count("compressed-undecompressible") == 3


def _compressed(tmp_path: Path, name: str, clusters: int = 1) -> bytearray:
    """A qcow2 image (64 KiB clusters) of ``clusters`` compressed clusters."""
    raw = tmp_path / f"{name}.raw"
    raw.write_bytes(b"".join(os.urandom(512) * 128 for _ in range(clusters)))
    path = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    return bytearray(path.read_bytes())


def _l2_tables_naming(data: bytearray, tables: int, entries: np.ndarray) -> bytearray:
    """``data`` with ``tables`` new L2 tables (appended, each a distinct
    cluster) whose entries are ``entries`` (8,192 of them, repeated), the L1
    table pointing at them and the virtual size covering them."""
    l1 = struct.unpack_from(">Q", data, 40)[0]
    end = spec.round_up(len(data), 65536)
    table = np.resize(entries, 8192).astype(">u8").tobytes()
    data += bytes(end - len(data)) + table * tables
    pointers = np.arange(tables, dtype=np.uint64) * np.uint64(65536) + np.uint64(end | 1 << 63)
    data[l1 : l1 + 8 * tables] = pointers.astype(">u8").tobytes()
    struct.pack_into(">Q", data, 24, tables * 8192 * 65536)
    struct.pack_into(">I", data, 36, tables)
    return data


def _first_l2_entry(data: bytearray) -> int:
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2 = struct.unpack_from(">Q", data, l1)[0] & spec.L1E_OFFSET_MASK
    return struct.unpack_from(">Q", data, l2)[0]


def _deep_report(path: Path):
    registry = load_registry()
    config = load_config(registry, start=path.parent)
    return lint_path(path, config, registry, deep=True).findings


def test_a_broken_payload_named_by_many_entries_is_one_record_and_every_entry_counts(
    tmp_path: Path, monkeypatch
) -> None:
    """One record per distinct payload: 1000 entries naming a broken one
    are decompressed once, shown up to the cap and counted in full."""
    data = _compressed(tmp_path, "many")
    entry = _first_l2_entry(data)
    host = entry & ((1 << (62 - 8)) - 1)
    data[host : host + 16] = b"\xff" * 16  # not a deflate stream
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2 = struct.unpack_from(">Q", data, l1)[0] & spec.L1E_OFFSET_MASK
    data[l2 : l2 + 8 * 1000] = struct.pack(">Q", entry) * 1000
    struct.pack_into(">Q", data, 24, 1000 * 65536)
    path = tmp_path / "many.qcow2"
    path.write_bytes(data)
    from qcow2lint import reader

    made = []
    real = reader._ImageReader.compressed_clusters

    def counting(self, image, batch, memo):
        for record in real(self, image, batch, memo):
            made.append(record.references)
            yield record

    monkeypatch.setattr(reader._ImageReader, "compressed_clusters", counting)
    found = [f for f in _deep_report(path) if f.rule == "compressed-undecompressible"]
    assert made == [1000]
    assert len(found) == 101 and found[-1].omitted == 900
    assert len({f.offset for f in found[:-1]}) == 100  # one finding per entry
    assert found[0].offset == l2 and found[0].location == f"l2@{l2:#x}[0]"


def test_each_payload_record_names_its_own_payload_and_entries(tmp_path: Path) -> None:
    """Several distinct payloads in one batch, one of them broken and named
    three times: exactly its entries are reported, with its offset."""
    data = _compressed(tmp_path, "mixed", clusters=8)
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2 = struct.unpack_from(">Q", data, l1)[0] & spec.L1E_OFFSET_MASK
    entry = struct.unpack_from(">Q", data, l2 + 8)[0]
    host = entry & ((1 << (62 - 8)) - 1)
    data[host : host + 16] = b"\xff" * 16
    data[l2 + 8 * 5 : l2 + 8 * 7] = struct.pack(">Q", entry) * 2  # entries 5 and 6 name it too
    path = tmp_path / "mixed.qcow2"
    path.write_bytes(data)
    found = [f for f in _deep_report(path) if f.rule == "compressed-undecompressible"]
    assert [f.location for f in found] == [f"l2@{l2:#x}[{i}]" for i in (1, 5, 6)]
    assert all(f"payload at {host:#x} " in f.message for f in found)


def test_deep_decompresses_each_distinct_payload_once_per_image(tmp_path: Path, monkeypatch) -> None:
    """Ten L2 tables, each its own batch, all naming one payload: one
    decompression for the image, not one per batch."""
    data = _compressed(tmp_path, "batches")
    path = tmp_path / "batches.qcow2"
    path.write_bytes(_l2_tables_naming(data, 10, np.array([_first_l2_entry(data)], dtype=np.uint64)))
    from qcow2lint import reader

    monkeypatch.setattr(reader, "L2_BATCH_BYTES", 65536)
    calls = []
    real = zlib.decompressobj
    monkeypatch.setattr(zlib, "decompressobj", lambda *args: calls.append(args) or real(*args))
    assert "compressed-undecompressible" not in [f.rule for f in _deep_report(path)]
    assert len(calls) == 1


def test_deep_stops_at_its_budget_with_one_warning_counting_what_it_left(tmp_path: Path, monkeypatch) -> None:
    """Past MAX_DEEP_PAYLOADS distinct payloads --deep reads no more and says
    so once, with the number of compressed entries it left unread."""
    data = _compressed(tmp_path, "budget", clusters=8)
    l1 = struct.unpack_from(">Q", data, 40)[0]
    l2 = struct.unpack_from(">Q", data, l1)[0] & spec.L1E_OFFSET_MASK
    path = tmp_path / "budget.qcow2"
    path.write_bytes(data)
    from qcow2lint import reader

    monkeypatch.setattr(reader, "MAX_DEEP_PAYLOADS", 3)
    found = [f for f in _deep_report(path) if f.rule == "compressed-undecompressible"]
    assert len(found) == 1 and found[0].severity.name == "WARNING"
    assert "stopped after 3 compressed payloads" in found[0].message
    assert "5 compressed entries were not decompressed" in found[0].message
    monkeypatch.setattr(reader, "MAX_DEEP_PAYLOADS", 8)
    assert "compressed-undecompressible" not in [f.rule for f in _deep_report(path)]
    # The byte budget counts each payload read plus a cluster of output:
    # payloads of a few KiB, 2.5 clusters hold two of them, not three.
    monkeypatch.setattr(reader, "MAX_DEEP_PAYLOADS", 8)
    monkeypatch.setattr(reader, "MAX_DEEP_BYTES", 5 * 65536 // 2)
    (stopped,) = [f for f in _deep_report(path) if f.rule == "compressed-undecompressible"]
    assert "stopped after 2 compressed payloads" in stopped.message
    assert "6 compressed entries" in stopped.message
    assert struct.unpack_from(">Q", data, l2)[0] & spec.OFLAG_COMPRESSED


def test_deep_over_two_million_entries_naming_one_payload_stays_small(tmp_path: Path) -> None:
    """2 M entries (256 L2 tables) naming one payload: one record per batch,
    memory well under the 300 MB target, and the totals true."""
    data = _compressed(tmp_path, "shared")
    path = tmp_path / "shared.qcow2"
    path.write_bytes(_l2_tables_naming(data, 256, np.array([_first_l2_entry(data)], dtype=np.uint64)))
    code, output, peak = _check_peak_rss(path, "--deep")
    assert code in (0, 1), output
    assert "compressed-undecompressible" not in output
    assert peak <= 300 * MB


def _analysis(path: Path):
    from qcow2lint.passes.refcounts import RefcountPass

    with open_image(path) as image_file:
        analysis = RefcountPass()
        assert analysis.start(image_file)
        for batch in image_file.l2_batches():
            analysis.add(batch)
        return analysis.finish()


def _shared_l1_snapshots(tmp_path: Path, copies: int, refcount_bits: int) -> Path:
    """A snapshot made by qemu-img, its table entry repeated ``copies`` times
    (every copy names the same L1 table), with ``refcount_bits``."""
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / f"snap-{refcount_bits}.qcow2"
    ib.create(path, 8 << 20, {"cluster_size": 65536})
    ib.write(path, 0, 65536, 0x22)
    subprocess.run(["qemu-img", "snapshot", "-c", "s", str(path)], check=True)
    data = bytearray(path.read_bytes())
    offset = struct.unpack_from(">Q", data, 64)[0]
    id_size, name_size = struct.unpack_from(">HH", data, offset + 12)
    extra = struct.unpack_from(">I", data, offset + 36)[0]
    size = spec.round_up(40 + extra + id_size + name_size, 8)
    entry = bytes(data[offset : offset + size]).ljust(size, b"\0")
    table = spec.round_up(len(data), 65536)
    data += bytes(table - len(data)) + entry * copies
    struct.pack_into(">I", data, 60, copies)
    struct.pack_into(">Q", data, 64, table)
    # qemu-img cannot snapshot with narrow refcounts: the width is patched
    # (the stored blocks then decode as junk, which does not matter here).
    struct.pack_into(">I", data, 96, refcount_bits.bit_length() - 1)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("refcount_bits", [1, 4, 16])
def test_counting_shared_snapshot_l1_tables_together_changes_no_figure(
    tmp_path: Path, monkeypatch, refcount_bits: int
) -> None:
    """Copies of one L1 table counted at once give exactly the counts,
    overflow events and figures of counting them one by one (with 1- and
    4-bit refcounts the counts saturate)."""
    from qcow2lint.passes.refcounts import RefcountBuilder

    path = _shared_l1_snapshots(tmp_path, 40, refcount_bits)
    grouped = _analysis(path)
    monkeypatch.setattr(RefcountBuilder, "_unsaturated_copies", lambda self, table: 0)
    alone = _analysis(path)
    assert grouped.stats == alone.stats
    assert grouped.overflows == alone.overflows and grouped.overflow_count == alone.overflow_count
    assert np.array_equal(grouped.computed, alone.computed)
    assert grouped.overlaps == alone.overlaps and grouped.overlap_count == alone.overlap_count


def test_rebuilt_counts_start_at_one_byte_and_widen_when_a_count_needs_it(tmp_path: Path) -> None:
    """The rebuilt refcounts take one byte per cluster until a count passes
    255 (300 snapshots sharing one L1 table): then they widen, losing nothing."""
    few = _analysis(_shared_l1_snapshots(tmp_path / "few", 40, 16))
    assert few.computed.dtype == np.uint8
    many = _analysis(_shared_l1_snapshots(tmp_path / "many", 300, 16))
    assert many.computed.dtype == np.uint16
    assert int(many.computed.max()) == 301 and many.overflow_count == 0
