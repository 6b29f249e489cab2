"""Files cut short inside a metadata table, by less than a cluster.

QEMU reads the bytes past the end of the file as zeros, so the entries of a
table the end cuts change: an L1 entry cut after its first byte keeps the
COPIED flag and loses its offset (`qemu-img check` then walks cluster 0,
the header, as an L2 table and counts dozens of corruptions), an entry cut
at its start reads as 0 (what it mapped leaks).  Each image here moves one
table (the active L1 table, an L2 table, the refcount block) to a new
cluster at the end of the file, fixes the refcounts for the move, and cuts
the file inside it.  qcow2lint must report the cut at error
(``file-truncated``) and its ``stats`` must equal every figure of
``qemu-img check --output=json`` (the rows also feed
tests/test_differential.py).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import QEMU_STATS_KEYS, Bases, lint_json, write_config

CLUSTER = 0x10000
OFFSET_MASK = 0x00FF_FFFF_FFFF_FE00


def _u64(data: bytes | bytearray, offset: int) -> int:
    return struct.unpack_from(">Q", data, offset)[0]


def cut_inside(kind: str, keep: Callable[[bytearray, int], int]) -> Callable[[ib.Qcow2Image], None]:
    """Move the ``kind`` table (l1, l2: the last L2 table, refblock) to a new
    cluster at the end of the file, move its refcount with it, and cut the
    file ``keep(data, new_offset)`` bytes into the new cluster."""

    def patch(img: ib.Qcow2Image) -> None:
        data = bytearray(img.path.read_bytes())
        assert len(data) % CLUSTER == 0
        new = len(data)
        reftable = _u64(data, 48)
        refblock = _u64(data, reftable) & OFFSET_MASK
        l1 = _u64(data, 40)
        if kind == "l1":
            old = l1
            struct.pack_into(">Q", data, 40, new)
        elif kind == "l2":
            l1_size = struct.unpack_from(">I", data, 36)[0]
            index = max(i for i in range(l1_size) if _u64(data, l1 + 8 * i))
            entry = _u64(data, l1 + 8 * index)
            old = entry & OFFSET_MASK
            struct.pack_into(">Q", data, l1 + 8 * index, (entry & ~OFFSET_MASK) | new)
        else:
            old = refblock
            struct.pack_into(">Q", data, reftable, new)
        data += data[old : old + CLUSTER]
        block = new if kind == "refblock" else refblock
        struct.pack_into(">H", data, block + 2 * (old // CLUSTER), 0)  # 16-bit refcounts
        struct.pack_into(">H", data, block + 2 * (new // CLUSTER), 1)
        end = new + keep(data, new)
        assert new < end < new + CLUSTER
        img.path.write_bytes(bytes(data[:end]))

    return patch


def _first_entry(data: bytearray, table: int) -> int:
    return next(i for i in range(CLUSTER // 8) if _u64(data, table + 8 * i))


@dataclass(frozen=True)
class Row:
    """A row of the differential test's shape: base image, patch, id."""

    id: str
    patch: Callable[[ib.Qcow2Image], None]
    base: str = "v3"
    rule: str = "file-truncated"


ROWS = [
    # entry 2 keeps its first byte, 0x80 (COPIED): QEMU's check walks cluster 0 as an L2 table
    Row("cut-l1-entry-flag-byte", cut_inside("l1", lambda data, new: 8 * 2 + 1)),
    # entry 2 reads as 0: its L2 table and data cluster leak
    Row("cut-l1-at-entry", cut_inside("l1", lambda data, new: 8 * 2)),
    # the first mapped entry keeps 3 bytes (COPIED, no offset): unallocated, its data leaks
    Row("cut-l2-entry", cut_inside("l2", lambda data, new: 8 * _first_entry(data, new) + 3)),
    # the cut leaves the later mapped entries whole but drops the rest of the table
    Row("cut-l2-after-entries", cut_inside("l2", lambda data, new: 8 * _first_entry(data, new) + 8)),
    # the refcount block loses its own refcount (cluster 8 is at bytes 16..17)
    Row("cut-refblock-own-entry", cut_inside("refblock", lambda data, new: 2 * (new // CLUSTER))),
    # cut inside the refcount of cluster 3: every later cluster reads refcount 0
    Row("cut-refblock-early", cut_inside("refblock", lambda data, new: 2 * 3 + 1)),
]


def qemu_check(path: Path) -> tuple[int, dict[str, int], str]:
    proc = ib.run_tool([ib.QEMU_IMG, "check", "--output=json", path], check=False)
    data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, {key: int(data.get(key, 0)) for key in QEMU_STATS_KEYS}, proc.stderr


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_cut_table_is_an_error_and_stats_agree(row: Row, base_images: Bases, tmp_path: Path) -> None:
    path = base_images.copy(row.base, tmp_path)
    row.patch(ib.Qcow2Image(path))
    image = lint_json(path)["images"][0]
    cut = [f for f in image["findings"] if f["rule"] == "file-truncated"]
    assert cut and cut[0]["severity"] == "error", image["findings"]
    rc, theirs, stderr = qemu_check(path)
    assert rc in (0, 2, 3), stderr
    ours = {key: image["stats"][key] for key in QEMU_STATS_KEYS}
    assert ours == theirs, f"qemu-img check exit {rc}: {stderr[:2000]}"


def test_the_rule_is_quiet_on_the_whole_file_and_can_be_disabled(base_images: Bases, tmp_path: Path) -> None:
    """The uncut base passes; with ``rules: {file-truncated: disable}`` a cut
    file no longer reports it."""
    whole = base_images.copy("v3", tmp_path)
    assert "file-truncated" not in {f["rule"] for f in lint_json(whole)["images"][0]["findings"]}
    cut = base_images.copy("v3", tmp_path, "cut.qcow2")
    ROWS[1].patch(ib.Qcow2Image(cut))
    assert "file-truncated" in {f["rule"] for f in lint_json(cut)["images"][0]["findings"]}
    config = write_config(tmp_path, "rules:\n  file-truncated: disable\n")
    quiet = lint_json(cut, "-c", str(config))["images"][0]["findings"]
    assert "file-truncated" not in {f["rule"] for f in quiet}
