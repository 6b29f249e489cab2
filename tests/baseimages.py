"""Recipes for the clean base images that the defect tests patch.

Each base is a real image made with qemu-img / qemu-io. The harness
(harness.Bases) builds each one once per session and hands every test its
own copy; :data:`BASES` are the general ones, :data:`EXTRA` those of the
header and bitmap rule tables. The constants
name where the recipes put data, so patch functions can find the L1/L2
entries they damage without hard-coding host offsets (those come from
:class:`imagebuilder.Qcow2Image`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagebuilder as ib

CLUSTER = 64 * 1024
GIB = 1 << 30
# A 2 GiB virtual disk with 64 KiB clusters has 4 L1 entries (512 MiB each),
# so data at 1 GiB + 3 clusters lives in l1[2], L2 index 3: non-zero indexes
# catch off-by-one and "always entry 0" mistakes in the reported locations.
VIRTUAL_SIZE = 2 * GIB
DATA_GUEST_OFFSETS = (0, GIB + 3 * CLUSTER)
PATCH_GUEST_OFFSET = GIB + 3 * CLUSTER
PATCH_L1_INDEX = 2
PATCH_L2_INDEX = 3

# Bitmap base: bm0 has 512-byte granularity, so each bitmap-table entry
# covers 512 * 64 KiB * 8 = 256 MiB; data at 600 MiB makes table[2] serialized.
BITMAP_GUEST_OFFSET = 600 << 20
BITMAP_TABLE_INDEX = 2

KIB = 1024
MIB = 1 << 20

# Tail base: a virtual size that is not a whole number of bitmap bytes, so
# the bitmap (granularity 64 KiB) has 1603 bits: byte 200 holds bits
# 1600..1602 and its bits 3..7 are tail bits.  Data in the last guest
# cluster sets bit 1602, which serializes table[0].
TAIL_SIZE = 100 * MIB + 3 * CLUSTER
TAIL_BITS = 1603
TAIL_LAST_BYTE = 200


@dataclass(frozen=True)
class BaseImage:
    """A named recipe for a clean image."""

    name: str
    description: str
    build: Callable[[Path], None]
    access: ib.Access = ib.PLAIN


def _build_v3(path: Path) -> None:
    ib.create(path, VIRTUAL_SIZE, {"cluster_size": CLUSTER})
    ib.write(path, DATA_GUEST_OFFSETS[0], CLUSTER, 0xAB)
    ib.write(path, DATA_GUEST_OFFSETS[1], CLUSTER, 0xCD)


def _build_v2(path: Path) -> None:
    ib.create(path, VIRTUAL_SIZE, {"compat": "0.10", "cluster_size": CLUSTER})
    ib.write(path, DATA_GUEST_OFFSETS[0], CLUSTER, 0xAB)
    ib.write(path, DATA_GUEST_OFFSETS[1], CLUSTER, 0xCD)


def _build_extl2(path: Path) -> None:
    ib.create(path, VIRTUAL_SIZE, {"cluster_size": CLUSTER, "extended_l2": True})
    ib.write(path, DATA_GUEST_OFFSETS[0], CLUSTER, 0xAB)
    ib.write(path, DATA_GUEST_OFFSETS[1], CLUSTER // 4, 0xCD)  # 8 of 32 subclusters


def _build_bitmaps(path: Path) -> None:
    ib.create(path, VIRTUAL_SIZE, {"cluster_size": CLUSTER})
    ib.bitmap_add(path, "bm0", granularity=512)
    ib.bitmap_add(path, "bm1", disabled=True)
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.write(path, BITMAP_GUEST_OFFSET, CLUSTER, 0xCD)


def _build_snapshot(path: Path) -> None:
    _build_v3(path)
    ib.snapshot_create(path, "snap1")
    # written after the snapshot: copy-on-write of cluster 0's L2 table
    ib.write(path, CLUSTER, CLUSTER, 0x11)


def _build_luks(path: Path) -> None:
    ib.create(
        path,
        8 << 20,
        {**ib.LUKS_CREATE_OPTIONS, "cluster_size": CLUSTER},
        access=ib.LUKS_ACCESS,
    )
    ib.write(path, 0, CLUSTER, 0xAB, access=ib.LUKS_ACCESS)


BASES: dict[str, BaseImage] = {
    b.name: b
    for b in (
        BaseImage("v3", "v3, 64 KiB clusters, 2 GiB, data in l1[0] and l1[2]", _build_v3),
        BaseImage(
            "extl2",
            "v3 with extended L2 (256 MiB per L2 table: data in l1[4]), 8 subclusters written",
            _build_extl2,
        ),
        BaseImage("v2", "v2 (compat=0.10), 64 KiB clusters, 2 GiB, data", _build_v2),
        BaseImage(
            "bitmaps",
            "v3 with enabled bitmap bm0 (granularity 512, data) and disabled bm1",
            _build_bitmaps,
        ),
        BaseImage("snapshot", "v3 with snapshot snap1 and data written after it", _build_snapshot),
        BaseImage("luks", "v3 LUKS-encrypted, 8 MiB, data", _build_luks, ib.LUKS_ACCESS),
    )
}


# --- the header and bitmap rule tables' own bases ---------------------------


def _backing_file(work: Path) -> Path:
    """A clean 16 MiB qcow2 image that the backing bases name (built once)."""
    path = work / "backing-base.qcow2"
    if not path.exists():
        ib.create(path, 16 * MIB)
    return path


def _build_backing(path: Path, work: Path) -> None:
    """v3 top image: backing format extension, feature table, backing name."""
    ib.create(path, 16 * MIB, backing=_backing_file(work), backing_fmt="qcow2")
    ib.write(path, CLUSTER, CLUSTER, 0x44)


def _build_backing_v2(path: Path, work: Path) -> None:
    ib.create(path, 16 * MIB, {"compat": "0.10"}, backing=_backing_file(work), backing_fmt="qcow2")


def _build_backing_v2_raw(path: Path, work: Path) -> None:
    raw = work / "backing-base.raw"
    raw.write_bytes(b"\x5a" * MIB)
    ib.create(path, MIB, {"compat": "0.10"}, backing=raw, backing_fmt="raw")


def _build_lazy(path: Path, work: Path) -> None:
    ib.create(path, 16 * MIB, {"lazy_refcounts": True})
    ib.write(path, 0, CLUSTER, 0x55)


def _build_small_cluster(path: Path, work: Path) -> None:
    ib.create(path, MIB, {"cluster_size": 4 * KIB})
    ib.write(path, 0, 8 * KIB, 0x66)


def _build_header_data_file(raw: bool) -> Callable[[Path, Path], None]:
    def build(path: Path, work: Path) -> None:
        options: dict[str, object] = {"data_file": str(work / f"{path.name}.data.raw")}
        if raw:
            options["data_file_raw"] = True
        ib.create(path, 16 * MIB, options)

    return build


def _build_tail(path: Path, work: Path) -> None:
    ib.create(path, TAIL_SIZE, {"cluster_size": CLUSTER})
    ib.bitmap_add(path, "tail")
    ib.write(path, TAIL_SIZE - CLUSTER, CLUSTER, 0x5A)


#: More clean bases, ``name -> build(path, work directory)``.
EXTRA: dict[str, Callable[[Path, Path], None]] = {
    "backing": _build_backing,
    "backing-v2": _build_backing_v2,
    "backing-v2-raw": _build_backing_v2_raw,
    "lazy": _build_lazy,
    "small-cluster": _build_small_cluster,
    "hdr-data-file": _build_header_data_file(raw=False),
    "hdr-data-file-raw": _build_header_data_file(raw=True),
    "bitmaps-tail": _build_tail,
}
