"""Real images made by qemu-img / qemu-io must produce no error finding.

Each case builds an image with one feature combination, proves it valid with
``qemu-img check`` (exit 0), then lints it: warnings and infos are allowed
(they are printed in the failure message), errors are not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import imagebuilder as ib
from harness import format_findings, lint
from rows_basic import REQUIRED_RULES

KIB = 1024
MIB = 1 << 20


@dataclass(frozen=True)
class Case:
    """One clean image recipe: ``build(dir) -> image path``."""

    id: str
    build: Callable[[Path], Path]
    access: ib.Access = ib.PLAIN


def populate(path: Path, cluster_size: int, size: int, *, access: ib.Access = ib.PLAIN) -> None:
    """Write a few data patterns: a full cluster, an unaligned partial write
    spanning a cluster boundary, and the last cluster of the disk."""
    cmds = [
        f"write -P 0xa1 0 {cluster_size}",
        f"write -P 0xb2 {3 * cluster_size - 700} 1400",
        f"write -P 0xc3 {size - cluster_size} {cluster_size}",
    ]
    ib.qemu_io(path, *cmds, access=access)


def _plain(size: int, options: dict[str, object], *, zero: bool = True) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = ib.create(directory / "img.qcow2", size, options)
        cs = int(options.get("cluster_size", 64 * KIB))
        populate(path, cs, size)
        if zero:
            ib.write(path, 6 * cs, 2 * cs, zero=True)
        return path

    return build


def _v2(directory: Path) -> Path:
    path = ib.create(directory / "v2.qcow2", 16 * MIB, {"compat": "0.10"})
    populate(path, 64 * KIB, 16 * MIB)
    return path


def _v2_snapshot(directory: Path) -> Path:
    path = _v2(directory)
    ib.snapshot_create(path, "s1")
    ib.write(path, 0, 4 * KIB, 0x77)
    return path


def _extl2(cluster_size: int) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = ib.create(
            directory / "extl2.qcow2",
            16 * MIB,
            {"extended_l2": True, "cluster_size": cluster_size},
        )
        sub = cluster_size // 32
        # single subclusters, a run of subclusters, a zeroed subcluster range
        ib.qemu_io(
            path,
            f"write -P 0x11 {sub} {sub}",
            f"write -P 0x22 {cluster_size + 5 * sub} {3 * sub}",
            f"write -P 0x33 {2 * cluster_size} {cluster_size}",
            f"write -z {2 * cluster_size + 4 * sub} {2 * sub}",
            f"write -z {4 * cluster_size} {sub}",
        )
        return path

    return build


def _compressed(compression_type: str, cluster_size: int) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = ib.create(
            directory / "comp.qcow2",
            max(16 * MIB, 16 * cluster_size),
            {"compression_type": compression_type, "cluster_size": cluster_size},
        )
        ib.qemu_io(
            path,
            f"write -c -P 0x5a 0 {cluster_size}",
            f"write -c -P 0x6b {4 * cluster_size} {2 * cluster_size}",
            f"write -P 0x7c {8 * cluster_size} {cluster_size}",
        )
        return path

    return build


def _lazy(directory: Path) -> Path:
    path = ib.create(directory / "lazy.qcow2", 16 * MIB, {"lazy_refcounts": True})
    populate(path, 64 * KIB, 16 * MIB)
    return path


def _backing(directory: Path) -> Path:
    base = ib.create(directory / "base.qcow2", 16 * MIB)
    populate(base, 64 * KIB, 16 * MIB)
    top = ib.create(directory / "top.qcow2", 16 * MIB, backing=base, backing_fmt="qcow2")
    ib.write(top, 64 * KIB, 64 * KIB, 0x44)
    return top


def _v2_backing(directory: Path) -> Path:
    # v2: the backing-format extension sits at byte 72, where v3 keeps its
    # feature bits; a v2 image must not be read as having feature bits
    base = ib.create(directory / "base.qcow2", 16 * MIB, {"compat": "0.10"})
    populate(base, 64 * KIB, 16 * MIB)
    top = ib.create(directory / "top.qcow2", 16 * MIB, {"compat": "0.10"}, backing=base, backing_fmt="qcow2")
    ib.write(top, 64 * KIB, 64 * KIB, 0x44)
    return top


def _backing_raw(directory: Path) -> Path:
    base = directory / "base.raw"
    base.write_bytes(b"\x5a" * MIB)
    top = ib.create(directory / "top.qcow2", MIB, backing=base, backing_fmt="raw")
    ib.write(top, 4 * KIB, 4 * KIB, 0x44)
    return top


def _data_file(raw: bool) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        options: dict[str, object] = {"data_file": str(directory / "data.raw")}
        if raw:
            options["data_file_raw"] = True
        path = ib.create(directory / "df.qcow2", 16 * MIB, options)
        populate(path, 64 * KIB, 16 * MIB)
        return path

    return build


def _luks(directory: Path) -> Path:
    path = ib.create(directory / "luks.qcow2", 8 * MIB, dict(ib.LUKS_CREATE_OPTIONS), access=ib.LUKS_ACCESS)
    populate(path, 64 * KIB, 8 * MIB, access=ib.LUKS_ACCESS)
    return path


def _snapshots(directory: Path) -> Path:
    path = ib.create(directory / "snap.qcow2", 16 * MIB)
    populate(path, 64 * KIB, 16 * MIB)
    ib.snapshot_create(path, "first")
    ib.write(path, 0, 64 * KIB, 0x99)
    ib.write(path, 5 * MIB, 64 * KIB, 0x98)
    ib.snapshot_create(path, "second")
    ib.write(path, 32 * KIB, 4 * KIB, 0x97)
    return path


def _bitmaps(directory: Path) -> Path:
    path = ib.create(directory / "bm.qcow2", 16 * MIB)
    ib.bitmap_add(path, "enabled", granularity=4 * KIB)
    ib.bitmap_add(path, "disabled", disabled=True)
    populate(path, 64 * KIB, 16 * MIB)
    ib.bitmap_add(path, "late")
    ib.write(path, 9 * MIB, 4 * KIB, 0x12)
    return path


def _prealloc(mode: str, options: dict[str, object] | None = None) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = ib.create(directory / "pre.qcow2", 4 * MIB, {"preallocation": mode, **(options or {})})
        ib.write(path, 64 * KIB, 4 * KIB, 0x31)
        return path

    return build


CASES: list[Case] = [
    Case("v2-compat-0.10", _v2),
    Case("v2-snapshot", _v2_snapshot),
    Case("v2-backing", _v2_backing),
    *(Case(f"v3-cluster-{cs}", _plain(8 * MIB, {"cluster_size": cs})) for cs in (512, 4 * KIB, 64 * KIB)),
    Case("v3-cluster-2M", _plain(16 * MIB, {"cluster_size": 2 * MIB}, zero=False)),
    *(Case(f"refcount-bits-{rb}", _plain(8 * MIB, {"refcount_bits": rb})) for rb in (1, 2, 4, 8, 16, 32, 64)),
    Case("refcount-bits-1-cluster-512", _plain(2 * MIB, {"refcount_bits": 1, "cluster_size": 512})),
    Case("extended-l2-64K", _extl2(64 * KIB)),
    Case("extended-l2-2M", _extl2(2 * MIB)),
    Case("compressed-zlib", _compressed("zlib", 64 * KIB)),
    Case("compressed-zstd", _compressed("zstd", 64 * KIB)),
    Case("compressed-zlib-4K", _compressed("zlib", 4 * KIB)),
    Case("compressed-zstd-2M", _compressed("zstd", 2 * MIB)),
    Case("lazy-refcounts", _lazy),
    Case("backing-qcow2", _backing),
    Case("backing-raw", _backing_raw),
    Case("data-file", _data_file(raw=False)),
    Case("data-file-raw", _data_file(raw=True)),
    Case("luks", _luks, ib.LUKS_ACCESS),
    Case("snapshots", _snapshots),
    Case("bitmaps", _bitmaps),
    Case("prealloc-metadata", _prealloc("metadata")),
    Case("prealloc-falloc", _prealloc("falloc")),
    Case("prealloc-metadata-extl2", _prealloc("metadata", {"extended_l2": True})),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_clean_image_has_no_errors(case: Case, tmp_path: Path) -> None:
    """qemu-img check passes, and qcow2lint reports nothing of severity error."""
    path = case.build(tmp_path)
    qemu = ib.qemu_check(path, access=case.access)
    assert qemu.returncode == 0, f"qemu-img check says {case.id} is not clean:\n{qemu.output}"
    report = lint(path)
    found = report.findings
    errors = [f for f in found if f["severity"] == "error"]
    assert not errors, f"errors on a clean {case.id} image; all findings:\n{format_findings(found)}"
    # none of the defect rules this suite covers fits a QEMU-made image, at any
    # severity (e.g. lazy refcounts are a known compat bit, not an unknown one)
    defects = [f for f in found if f["rule"] in REQUIRED_RULES]
    assert not defects, f"defect rules fired on a clean {case.id} image:\n{format_findings(defects)}"
