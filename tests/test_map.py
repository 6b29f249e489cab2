"""``qcow2lint map``: the runs, the pixels, the figures and the outputs.

Images come from qemu-img; defects are planted with the test-side patcher.
The picture is checked where it matters: a lone leaked cluster among 16 M
clusters of a 1 TiB image keeps its pixel, an overlap shows, the runs tile
the file, the leaks equal qemu-img check's, the figures equal qemu-img
measure's, names from the image stay text, and the outputs stay bounded.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import consistency_builders as cb
import imagebuilder as ib
import numpy as np
import pytest
from harness import run_cli_peak_rss

from qcow2lint.filemap import KINDS, build_map, run_map
from qcow2lint.filemap.analysis import GUEST_STATES, KIND, MAX_CELLS
from qcow2lint.filemap.command import render
from qcow2lint.filemap.page import embedded_json
from qcow2lint.filemap.render import KIND_COLOURS, worst

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.qcow2"
PICTURE = ROOT / "docs" / "map-demo.png"
MIB = 1 << 20


def map_json(path: Path) -> dict:
    """The JSON document, as the command writes it."""
    return json.loads(render(build_map(path), "json"))


def qemu_check_json(path: Path) -> dict:
    proc = subprocess.run(
        [ib.QEMU_IMG, "check", "--output=json", str(path)], capture_output=True, text=True, check=False
    )
    return json.loads(proc.stdout)


def png_pixels(data: bytes) -> np.ndarray:
    """Decode the RGB PNGs the map writes (one IDAT, filter 0 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunks[kind] = data[position + 8 : position + 8 + length]
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert not raw[:, 0].any()  # filter type 0 everywhere
    return raw[:, 1:].reshape(height, width, 3)


def assert_tiles(document: dict) -> None:
    """The runs cover clusters 0 to file_clusters - 1, each once, in order."""
    runs = document["runs"]
    assert runs[0][0] == 0
    for (first, count, _), (following, _, _) in zip(runs, runs[1:]):
        assert count > 0 and first + count == following
    last_first, last_count, _ = runs[-1]
    assert last_first + last_count == document["file_clusters"]
    assert all(kind in KINDS for _, _, kind in runs)


def leaked_clusters(document: dict) -> int:
    return sum(count for _, count, kind in document["runs"] if kind == "leaked")


# --- images -----------------------------------------------------------------------


def _fresh(path: Path, size: str = "64M", options: dict | None = None) -> Path:
    ib.create(path, size, options)
    return path


def _with_data(path: Path) -> Path:
    _fresh(path)
    ib.qemu_io(path, "write -P 0x11 0 1M", "write -P 0x22 8M 192k", "write -z 16M 64k")
    return path


def _leaks(path: Path, count: int) -> Path:
    """An image with ``count`` clusters that have refcount 1 and no reference."""
    _with_data(path)
    img = ib.Qcow2Image(path)
    cb.append_clusters(img, count)
    return path


def _snapshots(path: Path) -> Path:
    _with_data(path)
    ib.snapshot_create(path, "one")
    ib.qemu_io(path, "write -P 0x33 0 256k")
    return path


def _compressed(path: Path) -> Path:
    raw = path.with_suffix(".raw")
    cb.semi_random(raw, 64)
    cb.convert_compressed(raw, path, {"cluster_size": 65536})
    return path


@pytest.fixture(scope="module")
def tera(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """1 TiB, metadata preallocated (16.7 M data clusters, sparse on disk),
    with one data cluster's refcount raised to 2: one leaked cluster."""
    path = tmp_path_factory.mktemp("tera") / "tera.qcow2"
    _fresh(path, "1T", {"preallocation": "metadata"})
    img = ib.Qcow2Image(path)
    _, l2_offset, index = img.guest_to_l2((700 << 30) + (12345 << 16))
    entry = img.read_int(img.l2_entry_offset(l2_offset, index), "Q")
    cluster = (entry & ib.L2E_OFFSET_MASK) >> img.cluster_bits
    assert cluster > 1 << 20  # a data cluster far into the file
    cb.set_refcount(img, cluster, 2)
    return path, cluster


# --- the runs ---------------------------------------------------------------------


def test_the_demo_map_names_every_structure() -> None:
    document = map_json(DEMO)
    assert_tiles(document)
    kinds = [kind for _, _, kind in document["runs"]]
    assert kinds[:5] == ["header", "reftable", "refblock", "l1", "l2"]
    assert {"data", "bitmap-table", "bitmap-directory"} <= set(kinds)
    assert document["guest_runs"] == [[0, 2, "data"], [2, 254, "unallocated"]]
    assert document["findings"] and all("offset" in f for f in document["findings"])


@pytest.mark.parametrize("builder", [_with_data, _snapshots, _compressed, lambda p: _leaks(p, 3)])
def test_the_runs_tile_the_file(tmp_path: Path, builder) -> None:
    path = builder(tmp_path / "img.qcow2")
    document = map_json(path)
    assert_tiles(document)
    assert document["file_clusters"] == -(-path.stat().st_size // document["cluster_size"])


@pytest.mark.parametrize("count", [0, 1, 5])
@pytest.mark.parametrize("base", ["data", "snapshots"])
def test_leaked_clusters_equal_qemu_img_check(tmp_path: Path, count: int, base: str) -> None:
    path = _leaks(tmp_path / "img.qcow2", count) if base == "data" else _snapshots(tmp_path / "img.qcow2")
    if base == "snapshots" and count:
        cb.append_clusters(ib.Qcow2Image(path), count)
    document = map_json(path)
    qemu = qemu_check_json(path)
    assert leaked_clusters(document) == qemu.get("leaks", 0) == count
    assert document["figures"]["leaked-bytes"] == count * document["cluster_size"]
    for key in ("allocated-clusters", "fragmented-clusters", "compressed-clusters", "image-end-offset"):
        assert document["figures"][key] == qemu.get(key, 0)


def test_the_compressed_clusters_are_compressed(tmp_path: Path) -> None:
    document = map_json(_compressed(tmp_path / "img.qcow2"))
    kinds = {kind for _, _, kind in document["runs"]}
    assert "compressed" in kinds and "data" not in kinds
    assert {kind for _, _, kind in document["guest_runs"]} == {"compressed"}


def test_an_overlap_shows(tmp_path: Path) -> None:
    """A data cluster placed on the refcount table: the cluster is an
    overlap in the runs and in the pixel, where the overlap rule says."""
    path = _with_data(tmp_path / "img.qcow2")
    img = ib.Qcow2Image(path)
    _, l2_offset, _ = img.guest_to_l2(0)
    reftable = img.header["refcount_table_offset"]
    img.set_l2(l2_offset, 3, reftable | ib.OFLAG_COPIED)
    filemap = build_map(path)
    document = json.loads(render(filemap, "json"))
    cluster = reftable >> img.cluster_bits
    overlaps = [run for run in document["runs"] if run[2] == "overlap"]
    assert overlaps == [[cluster, 1, "overlap"]]
    pixel = cluster // filemap.host.layout.per_pixel
    assert worst(filemap.host)[pixel] == KIND["overlap"]
    overlap_findings = [f for f in document["findings"] if "overlap" in f["rule"]]
    assert overlap_findings and {f["offset"] >> img.cluster_bits for f in overlap_findings} == {cluster}


def test_a_lone_leaked_cluster_survives_aggregation(tera: tuple[Path, int], tmp_path: Path) -> None:
    path, cluster = tera
    filemap = build_map(path)
    layout = filemap.host.layout
    assert layout.per_pixel >= 256 and layout.pixels <= MAX_CELLS
    pixel = cluster // layout.per_pixel
    codes = worst(filemap.host)
    assert codes[pixel] == KIND["leaked"]
    assert np.count_nonzero(codes == KIND["leaked"]) == 1
    # The exact counts under that pixel: one leaked cluster, the rest data.
    counts = filemap.host.counts[pixel]
    assert counts[KIND["leaked"]] == 1 and counts.sum() == layout.per_pixel
    # In the PNG, the pixel has the leaked colour.
    pixels = png_pixels(render(filemap, "png"))
    scale = pixels.shape[1] // layout.width
    row, column = divmod(pixel, layout.width)
    assert tuple(pixels[row * scale, column * scale]) == KIND_COLOURS["leaked"]
    assert qemu_check_json(path)["leaks"] == 1 == leaked_clusters(json.loads(render(filemap, "json")))


def test_the_tera_page_is_bounded(tera: tuple[Path, int], tmp_path: Path) -> None:
    path, _ = tera
    out = tmp_path / "tera.html"
    assert run_map(str(path), str(out), None) == 0
    assert out.stat().st_size <= 2 * MIB
    document = map_json(path)
    assert document["figures"]["allocated-clusters"] == 1 << 24
    assert len(document["runs"]) < 10_000


# --- the figures ------------------------------------------------------------------


def _measure(path: Path) -> int:
    proc = subprocess.run(
        [ib.QEMU_IMG, "measure", "--output=json", "-O", "qcow2", str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)["required"]


@pytest.mark.parametrize(
    ("size", "options", "commands"),
    [
        (
            "3G",
            {"cluster_size": 4096},
            ["write -P 1 0 100k", "write -P 2 1M 3M", "write -z 5M 1M", "write -P 3 2G 70k"],
        ),
        ("3G", {"cluster_size": 2 * MIB}, ["write -P 1 0 100k", "write -P 2 1M 3M", "write -P 3 2G 70k"]),
        ("100G", {}, ["write -P 1 0 1M", "write -P 2 99G 64k", "write -P 4 107374181888 100"]),
        ("1G", {"preallocation": "metadata"}, ["write -P 1 4M 1M"]),
        ("64M", {}, []),
    ],
)
def test_the_required_size_is_qemu_img_measures(tmp_path: Path, size: str, options: dict, commands: list) -> None:
    path = _fresh(tmp_path / "img.qcow2", size, options)
    if commands:
        ib.qemu_io(path, *commands)
    figures = map_json(path)["figures"]
    assert figures["measure-required"] == _measure(path)
    assert figures["reclaimable"] == max(path.stat().st_size - figures["measure-required"], 0)


def test_the_compressed_image_measures_as_qemu_does(tmp_path: Path) -> None:
    path = _compressed(tmp_path / "img.qcow2")
    assert map_json(path)["figures"]["measure-required"] == _measure(path)


def test_the_guest_map_has_every_state(tmp_path: Path) -> None:
    path = _fresh(tmp_path / "img.qcow2", "64M", {"extended_l2": "on", "cluster_size": 65536})
    ib.qemu_io(path, "write -P 1 0 64k", "write -P 2 128k 4k", "write -z 256k 64k")
    runs = map_json(path)["guest_runs"]
    assert runs[:4] == [[0, 1, "data"], [1, 1, "unallocated"], [2, 1, "subclusters"], [3, 1, "unallocated"]]
    assert [4, 1, "zero"] in runs
    assert {kind for _, _, kind in runs} <= set(GUEST_STATES)


# --- names from the image ---------------------------------------------------------

HOSTILE = "</script><script>alert(1)</script>"


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.data: list[str] = []
        self.meta: list[dict[str, str | None]] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._inside = True
            self.data.append("")
        if tag == "meta":
            self.meta.append(dict(attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.data[-1] += data


def test_hostile_names_stay_text(tmp_path: Path) -> None:
    path = _with_data(tmp_path / "img.qcow2")
    names = [HOSTILE, "a\u2028b\u2029c & <b>bold</b>", "--></style><img src=x onerror=alert(2)>"]
    for name in names:
        ib.snapshot_create(path, name)
    out = tmp_path / "map.html"
    assert run_map(str(path), str(out), None) == 0
    page = out.read_text(encoding="utf-8")
    assert "alert(1)</script>" not in page and "<img" not in page and "\u2028" not in page
    parser = _Scripts()
    parser.feed(page)
    assert len(parser.scripts) == 2  # the data and the page's own script, nothing else
    assert parser.scripts[0].get("type") == "application/json"
    data = json.loads(parser.data[0])
    assert data["names"]["snapshots"] == names
    # The page's script never puts text in as HTML.
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page and "document.write" not in page
    # And the SVG escapes them where it shows text.
    svg = render(build_map(path), "svg").decode()
    assert "<script" not in svg


def test_the_embedded_json_cannot_close_its_element() -> None:
    text = embedded_json({"name": "</script>\u2028&<!--", "x": [1]})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == {"name": "</script>\u2028&<!--", "x": [1]}


def test_the_page_allows_no_network() -> None:
    page = render(build_map(DEMO), "html").decode()
    parser = _Scripts()
    parser.feed(page)
    policy = next(m["content"] for m in parser.meta if m.get("http-equiv") == "Content-Security-Policy")
    assert policy is not None and policy.startswith("default-src 'none'; ")
    assert "img-src data:" in policy and "unsafe-inline" not in policy and "connect-src" not in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+';", policy)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(" not in page


# --- outputs and the command ------------------------------------------------------


def test_the_formats(tmp_path: Path) -> None:
    for suffix in ("html", "svg", "png", "json"):
        out = tmp_path / f"demo.{suffix}"
        assert run_map(str(DEMO), str(out), None) == 0
    assert (tmp_path / "demo.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "demo.svg").read_text().startswith("<svg ")
    assert json.loads((tmp_path / "demo.json").read_text())["cluster_size"] == 4096
    assert (tmp_path / "demo.html").read_text().startswith("<!DOCTYPE html>")
    # --format wins over the suffix.
    out = tmp_path / "map.out"
    assert run_map(str(DEMO), str(out), "svg") == 0 and out.read_text().startswith("<svg ")


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qcow2lint", "map", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_json_goes_to_stdout() -> None:
    proc = _cli(str(DEMO))
    assert proc.returncode == 0 and not proc.stderr
    assert json.loads(proc.stdout)["runs"][0] == [0, 1, "header"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.qcow2", "-o", "m.html"], "missing.qcow2: no such file or directory"),
        (["{demo}", "-o", "m.txt"], "-o m.txt: cannot tell the format from the suffix"),
        (["{demo}", "-f", "bmp"], "--format: expected one of html, svg, png, json, got 'bmp'"),
        (["{demo}", "-f", "png"], "--format png needs -o FILE"),
        (["{demo}", "-o", "nowhere/m.html"], "-o nowhere/m.html: no such directory: nowhere"),
        (["{demo}", "-o", "."], "-o .: is a directory"),
        (["{tmp}", "-o", "m.html"], ": is a directory"),
    ],
)
def test_bad_inputs_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    args = [a.replace("{demo}", str(DEMO)).replace("{tmp}", str(tmp_path)) for a in args]
    proc = _cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qcow2lint: error: ") and message in lines[0]
    assert not (tmp_path / "m.html").exists()


@pytest.mark.parametrize("content", [b"", b"QFI\xfb" + bytes(100), bytes(range(256)) * 64])
def test_a_file_that_is_no_image_is_drawn(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.qcow2"
    path.write_bytes(content)
    out = tmp_path / "junk.html"
    assert run_map(str(path), str(out), None) == 0
    document = map_json(path)
    assert {kind for _, _, kind in document["runs"]} == {"unanalysed"}
    assert document["findings"]


def test_a_sparse_10_tib_file_is_one_free_run(tmp_path: Path) -> None:
    path = _fresh(tmp_path / "img.qcow2", "1G")
    import os

    os.truncate(path, 10 << 40)
    filemap = build_map(path)
    document = json.loads(render(filemap, "json"))
    assert document["runs"][-1][2] == "free" and document["runs"][-1][1] > 100_000_000
    assert len(document["runs"]) < 10
    assert filemap.host.layout.pixels <= MAX_CELLS
    assert len(render(filemap, "html")) < 512 * 1024


# --- the picture in the docs ------------------------------------------------------


def test_the_docs_picture_is_fresh() -> None:
    """docs/map-demo.png is what ``qcow2lint map examples/demo.qcow2 -o
    docs/map-demo.png`` writes (examples/make_map_picture.py rewrites it)."""
    assert PICTURE.read_bytes() == render(build_map(DEMO), "png")
    assert "map-demo.png" in (ROOT / "docs" / "map.md").read_text(encoding="utf-8")


# --- hostile files cost what check costs ------------------------------------------

MB = 1_000_000


@pytest.mark.parametrize(
    ("name", "patches", "budget"),
    [
        ("valid", {}, 150 * MB),
        ("huge-l1-size", {36: (">I", 1 << 28)}, 300 * MB),
        ("huge-reftable", {56: (">I", 0xFFFFFFFF)}, 1000 * MB),
    ],
)
def test_a_sparse_10_tib_file_maps_within_checks_budget(
    tmp_path: Path, name: str, patches: dict[int, tuple[str, int]], budget: int
) -> None:
    """The sparse 10 TiB files of tests/test_bounds.py, with the same memory
    budgets as ``check``; the page stays within 4 MiB."""
    plain = _fresh(tmp_path / "plain.qcow2", "64M", {"cluster_size": 65536})
    ib.write(plain, 0, 65536, 0x11)
    data = bytearray(plain.read_bytes())
    for offset, (fmt, value) in patches.items():
        struct.pack_into(fmt, data, offset, value)
    path = tmp_path / f"{name}.qcow2"
    path.write_bytes(data)
    import os

    os.truncate(path, 10 << 40)
    page = tmp_path / "page.html"
    child, peak = run_cli_peak_rss(tmp_path / "peak", "map", "--deep", path, "-o", page)
    assert child.returncode == 0, child.stderr
    assert peak <= budget
    assert page.stat().st_size <= 4 * MIB


def test_a_reference_past_the_end_is_one_extra_cell(tmp_path: Path) -> None:
    path = _with_data(tmp_path / "img.qcow2")
    img = ib.Qcow2Image(path)
    _, l2_offset, _ = img.guest_to_l2(0)
    beyond = cb.beyond_eof(img, 10)
    img.set_l2(l2_offset, 5, beyond | ib.OFLAG_COPIED)
    filemap = build_map(path)
    document = json.loads(render(filemap, "json"))
    assert_tiles(document)
    assert document["past_end"] == [{"offset": beyond, "length": 65536, "structure": f"l2@{l2_offset:#x}[5]"}]
    assert document["figures"]["references-past-end"] == 1
    # The picture has one more cell than the file has clusters: past-end.
    assert filemap.host.layout.cells == document["file_clusters"] + 1
    assert worst(filemap.host)[filemap.host.layout.pixels - 1] == KIND["past-end"]
