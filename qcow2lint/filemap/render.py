"""The map as JSON, PNG (numpy and zlib) and SVG.

The JSON is the data every picture draws.  The PNG and the SVG draw the
file map above the guest map, a pixel per ``per_pixel`` clusters, the most
severe kind under each pixel (:data:`~qcow2lint.filemap.analysis.KINDS`).
"""

from __future__ import annotations

import json
import struct
import zlib
from xml.sax.saxutils import escape

import numpy as np

from qcow2lint.filemap.analysis import GUEST_STATES, GUEST_TITLES, KIND_TITLES, KINDS, FileMap, Runs
from qcow2lint.text import json_safe

#: Colours (RGB) of host kinds: problems loud, metadata mid-tones, data muted.
KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "free": (238, 238, 238),
    "data": (120, 170, 220),
    "compressed": (70, 110, 190),
    "l2": (140, 200, 120),
    "snapshot-l2": (180, 220, 150),
    "refblock": (240, 200, 80),
    "bitmap-data": (200, 170, 230),
    "bitmap-table": (170, 130, 210),
    "bitmap-directory": (140, 90, 190),
    "snapshot-l1": (100, 170, 160),
    "snapshot-table": (60, 140, 130),
    "luks": (150, 110, 70),
    "reftable": (220, 150, 40),
    "l1": (40, 130, 60),
    "header": (30, 30, 30),
    "unanalysed": (170, 170, 170),
    "leaked": (255, 120, 0),
    "refcount-low": (230, 60, 160),
    "refcount-zero": (200, 0, 200),
    "overlap": (220, 0, 0),
    "past-end": (120, 0, 0),
    "omitted": (90, 90, 90),
}
GUEST_COLOURS: dict[str, tuple[int, int, int]] = {
    "unallocated": (238, 238, 238),
    "zero": (200, 200, 200),
    "sparse": (185, 215, 240),
    "data": (120, 170, 220),
    "compressed": (70, 110, 190),
    "subclusters": (250, 190, 90),
    "unreadable": (220, 0, 0),
    "omitted": (90, 90, 90),
}
#: Between the two maps in the PNG.
BACKGROUND = (255, 255, 255)
SCALE = 2
#: The PNG's maps are drawn this wide.
PNG_WIDTH = 512


def hex_colour(rgb: tuple[int, int, int]) -> str:
    """``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def worst(runs: Runs) -> np.ndarray:
    """The most severe kind code under each pixel."""
    present = runs.counts > 0
    codes = runs.counts.shape[1]
    return (codes - 1 - np.argmax(present[:, ::-1], axis=1)).astype(np.uint8)


def to_json(filemap: FileMap) -> dict[str, object]:
    """The map as plain data: the JSON document."""
    host = filemap.host
    count = host.count.copy()
    if filemap.past_end:  # the picture's extra cell after the file is no cluster
        count[-1] -= 1
    keep = count > 0
    host_runs = [
        [first, length, KINDS[kind]]
        for first, length, kind in zip(host.first[keep].tolist(), count[keep].tolist(), host.kind[keep].tolist())
    ]
    return {
        "path": filemap.path,
        "cluster_size": filemap.cluster_size,
        "file_size": filemap.file_size,
        "virtual_size": filemap.virtual_size,
        "file_clusters": filemap.file_clusters,
        "kinds": {name: KIND_TITLES[name] for name in KINDS},
        "runs": host_runs,
        "runs_omitted": filemap.host.omitted,
        "guest_clusters": int(filemap.guest.count.sum()) if len(filemap.guest.count) else 0,
        "guest_states": {name: GUEST_TITLES[name] for name in GUEST_STATES},
        "guest_runs": filemap.guest.listed(GUEST_STATES),
        "guest_runs_omitted": filemap.guest.omitted,
        "past_end": [{"offset": o, "length": n, "structure": label} for o, n, label in filemap.past_end],
        "figures": filemap.figures,
        "names": filemap.names,
        "findings": [finding.to_json() for finding in filemap.findings],
    }


def render_json(filemap: FileMap) -> str:
    """The JSON document, one key per line at the top level."""
    document = to_json(filemap)
    parts = [f"  {json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}" for key, value in document.items()]
    return json_safe("{\n" + ",\n".join(parts) + "\n}\n")


def _rgb(runs: Runs, colours: dict[str, tuple[int, int, int]], names: tuple[str, ...]) -> np.ndarray:
    """The map as an RGB image (rows x width x 3), unused pixels background."""
    layout = runs.layout
    palette = np.array([colours[name] for name in names], np.uint8)
    codes = worst(runs)
    image = np.empty((layout.rows * layout.width, 3), np.uint8)
    image[:] = BACKGROUND
    image[: len(codes)] = palette[codes]
    return image.reshape(layout.rows, layout.width, 3)


def picture(filemap: FileMap) -> np.ndarray:
    """The PNG's pixels: the file map, a gap, the guest map, scaled."""
    host = _scaled(_rgb(filemap.host, KIND_COLOURS, KINDS))
    guest = _scaled(_rgb(filemap.guest, GUEST_COLOURS, GUEST_STATES))
    width = max(host.shape[1], guest.shape[1])

    def pad(part: np.ndarray) -> np.ndarray:
        out = np.empty((part.shape[0], width, 3), np.uint8)
        out[:] = BACKGROUND
        out[:, : part.shape[1]] = part
        return out

    gap = np.empty((16, width, 3), np.uint8)
    gap[:] = BACKGROUND
    return np.concatenate([pad(host), gap, pad(guest)])


def _scaled(part: np.ndarray) -> np.ndarray:
    """A map drawn ``PNG_WIDTH`` pixels wide (a whole number of pixels per cell)."""
    scale = max(1, PNG_WIDTH // part.shape[1])
    return part.repeat(scale, axis=0).repeat(scale, axis=1)


def png_bytes(pixels: np.ndarray) -> bytes:
    """An RGB PNG of ``pixels`` (rows x width x 3, uint8): zlib and struct."""
    height, width = pixels.shape[:2]

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def render_png(filemap: FileMap) -> bytes:
    """The file map above the guest map, as a PNG."""
    return png_bytes(picture(filemap))


def _svg_rects(runs: Runs, colours: dict[str, tuple[int, int, int]], names: tuple[str, ...], top: int) -> list[str]:
    """One rectangle per horizontal run of equal pixels."""
    layout = runs.layout
    codes = worst(runs)
    rects = []
    for row in range(layout.rows):
        line = codes[row * layout.width : (row + 1) * layout.width]
        if not len(line):
            break
        starts = np.flatnonzero(np.concatenate([[True], line[1:] != line[:-1]]))
        ends = np.concatenate([starts[1:], [len(line)]])
        for start, end in zip(starts.tolist(), ends.tolist()):
            name = names[int(line[start])]
            rects.append(
                f'<rect x="{start * SCALE}" y="{top + row * SCALE}" width="{(end - start) * SCALE}" '
                f'height="{SCALE}" fill="{hex_colour(colours[name])}"/>'
            )
    return rects


def render_svg(filemap: FileMap) -> str:
    """The file map, the guest map and their legends, as SVG."""
    host, guest = filemap.host, filemap.guest
    width = max(host.layout.width, guest.layout.width) * SCALE
    lines: list[str] = []
    y = 16
    title = escape(f"{filemap.path}: {filemap.file_clusters} clusters of {filemap.cluster_size} bytes")
    lines.append(f'<text x="0" y="12" font-size="11" font-family="sans-serif">{title}</text>')
    lines += _svg_rects(host, KIND_COLOURS, KINDS, y)
    y += host.layout.rows * SCALE + 8
    lines.append(f'<text x="0" y="{y + 10}" font-size="11" font-family="sans-serif">guest</text>')
    y += 14
    lines += _svg_rects(guest, GUEST_COLOURS, GUEST_STATES, y)
    y += guest.layout.rows * SCALE + 12
    totals = host.totals(KINDS)
    legend_width = 0
    for name in KINDS:
        if not totals[name]:
            continue
        lines.append(f'<rect x="0" y="{y}" width="10" height="10" fill="{hex_colour(KIND_COLOURS[name])}"/>')
        text = escape(f"{KIND_TITLES[name]}: {totals[name]}")
        lines.append(f'<text x="14" y="{y + 9}" font-size="10" font-family="sans-serif">{text}</text>')
        legend_width = max(legend_width, 14 + 6 * len(text))
        y += 13
    width = max(width, legend_width)
    body = "\n".join(lines)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 4}" '
        f'viewBox="0 0 {width} {y + 4}" shape-rendering="crispEdges">\n{body}\n</svg>\n'
    )
