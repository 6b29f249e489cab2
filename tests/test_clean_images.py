"""Real images made by qemu-img / qemu-io must produce no finding at all.

Each case builds an image with one feature combination (``qemu-img
create``/``convert``/``snapshot``/``bitmap`` and ``qemu-io`` writes), proves
it valid with ``qemu-img check`` (exit 0), then lints it with the default
configuration: no finding of any severity is allowed (issue 8, item 1).
Rules that describe legal layouts are off by default (the ``pedantic``
preset turns them on); the last test shows they still fire there, so the
silence is the configuration's and not a blind reader's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import format_findings, lint
from rows_basic import REQUIRED_RULES

from qcow2lint.registry import load_registry

KIB = 1024
#: The default preset as a file, so that no configuration discovered from the
#: working directory changes what "the default configuration" means here.
DEFAULTS = Path(__file__).resolve().parents[1] / "qcow2lint" / "presets" / "default.yaml"
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


def _v2_cluster(cluster_size: int) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        path = ib.create(directory / "v2.qcow2", 8 * MIB, {"compat": "0.10", "cluster_size": cluster_size})
        populate(path, cluster_size, 8 * MIB)
        return path

    return build


def convert(source: Path, target: Path, *args: str) -> Path:
    """``qemu-img convert -O qcow2 ARGS source target``."""
    ib.run_tool([ib.QEMU_IMG, "convert", "-q", "-O", "qcow2", *args, source, target])
    return target


def _raw_source(directory: Path, size: int = 8 * MIB) -> Path:
    """A raw image with data, zeros and a compressible run: what convert reads."""
    raw = directory / "src.raw"
    with open(raw, "wb") as handle:
        handle.truncate(size)
        handle.seek(0)
        handle.write(bytes(range(256)) * 256)  # 64 KiB that compresses a little
        handle.seek(3 * MIB - 700)
        handle.write(b"\x5a" * 1400)
        handle.seek(size - 4096)
        handle.write(b"\xc3" * 4096)
    return raw


def _converted(*args: str) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        return convert(_raw_source(directory), directory / "conv.qcow2", *args)

    return build


def _converted_from_snapshots(directory: Path) -> Path:
    # qcow2 -> qcow2 copies the active layer only; the source's snapshots stay behind
    return convert(_snapshots(directory), directory / "conv.qcow2", "-c", "-o", "compression_type=zstd")


def _luks_extras(directory: Path) -> Path:
    options = {**ib.LUKS_CREATE_OPTIONS, "cluster_size": 4 * KIB, "preallocation": "metadata"}
    path = ib.create(directory / "luks.qcow2", 4 * MIB, options, access=ib.LUKS_ACCESS)
    populate(path, 4 * KIB, 4 * MIB, access=ib.LUKS_ACCESS)
    ib.run_tool([ib.QEMU_IMG, "snapshot", "-q", "-c", "s1", *ib.LUKS_ACCESS.args(path)])
    ib.write(path, 0, 4 * KIB, 0x77, access=ib.LUKS_ACCESS)
    return path


def _luks_data_file(directory: Path) -> Path:
    options = {**ib.LUKS_CREATE_OPTIONS, "data_file": str(directory / "data.raw")}
    path = ib.create(directory / "luks.qcow2", 4 * MIB, options, access=ib.LUKS_ACCESS)
    populate(path, 64 * KIB, 4 * MIB, access=ib.LUKS_ACCESS)
    return path


def _bitmaps_snapshot_extl2(directory: Path) -> Path:
    path = ib.create(directory / "bm.qcow2", 16 * MIB, {"extended_l2": True, "cluster_size": 32 * KIB})
    ib.bitmap_add(path, "b1", granularity=64 * KIB)
    populate(path, 32 * KIB, 16 * MIB)
    ib.snapshot_create(path, "s1")
    ib.bitmap_add(path, "off", disabled=True)
    ib.write(path, 2 * MIB, 8 * KIB, 0x21)
    return path


def _backing_chain(directory: Path) -> Path:
    # a three-layer chain with relative backing names, as `qemu-img create -b
    # NAME` writes them (QEMU resolves them against the overlay's directory)
    base = ib.create(directory / "base.qcow2", 16 * MIB, {"cluster_size": 4 * KIB})
    populate(base, 4 * KIB, 16 * MIB)
    mid = directory / "mid.qcow2"
    ib.run_tool([ib.QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid])
    ib.write(mid, 128 * KIB, 4 * KIB, 0x45)
    top = directory / "top.qcow2"
    ib.run_tool(
        [ib.QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", "-o", "extended_l2=on", top]
    )
    ib.write(top, 300 * KIB, 4 * KIB, 0x46)
    return top


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
    Case("prealloc-off", _prealloc("off")),
    Case("prealloc-full", _prealloc("full")),
    Case("prealloc-full-v2", _prealloc("full", {"compat": "0.10"})),
    Case("prealloc-falloc-cluster-2M", _prealloc("falloc", {"cluster_size": 2 * MIB})),
    *(Case(f"v2-cluster-{cs}", _v2_cluster(cs)) for cs in (512, 2 * MIB)),
    *(Case(f"v3-cluster-{cs}", _plain(8 * MIB, {"cluster_size": cs})) for cs in (1 * KIB, 16 * KIB, 256 * KIB)),
    Case("refcount-bits-64-cluster-2M", _plain(16 * MIB, {"refcount_bits": 64, "cluster_size": 2 * MIB}, zero=False)),
    Case("lazy-refcounts-extl2", _plain(8 * MIB, {"lazy_refcounts": True, "extended_l2": True})),
    Case("convert-plain", _converted()),
    Case("convert-zlib", _converted("-c")),
    Case("convert-zstd", _converted("-c", "-o", "compression_type=zstd")),
    Case("convert-zlib-cluster-4K", _converted("-c", "-o", "cluster_size=4096")),
    Case("convert-zstd-extl2", _converted("-c", "-o", "compression_type=zstd,extended_l2=on")),
    Case("convert-v2", _converted("-o", "compat=0.10")),
    Case("convert-v2-zlib", _converted("-c", "-o", "compat=0.10")),
    Case("convert-prealloc-metadata", _converted("-o", "preallocation=metadata")),
    Case("convert-qcow2-with-snapshots", _converted_from_snapshots),
    Case("luks-cluster-4K-prealloc", _luks_extras, ib.LUKS_ACCESS),
    Case("luks-data-file", _luks_data_file, ib.LUKS_ACCESS),
    Case("bitmaps-snapshot-extl2", _bitmaps_snapshot_extl2),
    Case("backing-chain-relative", _backing_chain),
]


#: The rules off by default (legal layouts QEMU writes, untrusted-image policies).
OFF_BY_DEFAULT = {rule.name for rule in load_registry() if not rule.default_enabled}
#: What `pedantic` must see on some of the cases.
PEDANTIC_SEES: dict[str, set[str]] = {
    "v2-snapshot": {"snapshot-v2-resize"},
    "prealloc-metadata-extl2": {"extl2-allocated-empty-bitmap"},
    "backing-chain-relative": {"backing-file-present", "file-trailing-partial-cluster"},
    "backing-qcow2": {"backing-file-present", "backing-file-unsafe-name"},  # qemu-img wrote an absolute name
    "data-file": {"data-file-present", "data-file-unsafe-name"},
    "convert-zlib": {"file-trailing-partial-cluster"},
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_clean_image_has_no_findings(case: Case, tmp_path: Path) -> None:
    """qemu-img check passes, and qcow2lint reports nothing at all, not even
    an info: ``--fail-level info`` passes."""
    path = case.build(tmp_path)
    qemu = ib.qemu_check(path, access=case.access)
    assert qemu.returncode == 0, f"qemu-img check says {case.id} is not clean:\n{qemu.output}"
    found = lint(path, DEFAULTS.read_text()).findings
    errors = [f for f in found if f["severity"] == "error"]
    assert not errors, f"errors on a clean {case.id} image; all findings:\n{format_findings(found)}"
    # none of the defect rules this suite covers fits a QEMU-made image, at any
    # severity (e.g. lazy refcounts are a known compat bit, not an unknown one)
    defects = [f for f in found if f["rule"] in REQUIRED_RULES]
    assert not defects, f"defect rules fired on a clean {case.id} image:\n{format_findings(defects)}"
    assert not found, f"findings on a clean {case.id} image:\n{format_findings(found)}"
    # under pedantic only rules that are off by default speak, at info, and
    # the layouts they describe are seen (the silence above is configuration)
    pedantic = lint(path, "extends: pedantic\n").findings
    loud = [f for f in pedantic if f["rule"] not in OFF_BY_DEFAULT or f["severity"] != "info"]
    assert not loud, format_findings(loud)
    fired = {f["rule"] for f in pedantic}
    assert PEDANTIC_SEES.get(case.id, set()) <= fired, format_findings(pedantic)
