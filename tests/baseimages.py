"""Recipes for the clean base images that the defect tests patch.

Each base is a real image made with qemu-img / qemu-io. conftest.py builds
each one once per session and hands every test its own copy. The constants
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
