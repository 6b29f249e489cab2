"""Test-side helpers for the consistency rules (catalogue §2.6-§2.12) and the
differential test against ``qemu-img check``.

Like :mod:`imagebuilder`, nothing here uses ``qcow2lint``: refcounts are
read and written straight from the refcount blocks (§1.7), compressed
descriptors are decoded with the formulas of §1.6, and every clean image is
made by ``qemu-img`` / ``qemu-io`` / ``qemu-img convert``.  The module has
three parts:

* patch helpers on top of :class:`imagebuilder.Qcow2Image` (refcounts of any
  width, compressed descriptors, appending clusters, re-encoding the refcount
  structure at another width, a minimal snapshot table entry);
* :data:`RECIPES`, the extra clean images the consistency rows patch (built by harness.Bases);
* :data:`VARIANTS`, the clean (and a few deliberately inconsistent) images
  the differential test compares ``qcow2lint`` and ``qemu-img check`` on.
"""

from __future__ import annotations

import os
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imagebuilder as ib

KIB = 1024
MIB = 1 << 20
GIB = 1 << 30
CLUSTER = 64 * KIB

INCOMPAT_DATA_FILE = 1 << 2
AUTOCLEAR_BITMAPS = 1


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


# --------------------------------------------------------------------------
# Refcounts (§1.7)
# --------------------------------------------------------------------------


def refcount_entry(img: ib.Qcow2Image, cluster: int) -> tuple[int, int, int]:
    """``(byte offset, bit shift, width)`` of the stored refcount of
    ``cluster``; the refcount block must exist."""
    order = img.header["refcount_order"]
    width = 1 << order
    block_bits = img.cluster_bits + 3 - order
    index = cluster >> block_bits
    assert index < len(img.reftable), f"cluster {cluster} is past the refcount table"
    block = img.reftable[index] & ib.REFT_OFFSET_MASK
    assert block, f"cluster {cluster} has no refcount block"
    within = cluster & ((1 << block_bits) - 1)
    if width >= 8:
        return block + within * width // 8, 0, width
    return block + within * width // 8, (within * width) % 8, width


def set_refcount(img: ib.Qcow2Image, cluster: int, value: int) -> int:
    """Overwrite the stored refcount of ``cluster``; returns the byte offset
    of the refcount entry (for sub-byte widths: the byte that holds it)."""
    offset, shift, width = refcount_entry(img, cluster)
    assert 0 <= value < (1 << width), f"{value} does not fit in {width} bits"
    if width >= 8:
        img.write_bytes(offset, value.to_bytes(width // 8, "big"))
    else:
        byte = img.read_bytes(offset, 1)[0]
        mask = ((1 << width) - 1) << shift
        img.write_bytes(offset, bytes([(byte & ~mask) | (value << shift)]))
    return offset


def add_refcount(img: ib.Qcow2Image, cluster: int, delta: int) -> int:
    """Add ``delta`` to the stored refcount of ``cluster``."""
    return set_refcount(img, cluster, img.refcount(cluster) + delta)


def reencode_refcounts(img: ib.Qcow2Image, order: int) -> None:
    """Rewrite the (single) refcount block at width ``1 << order``, saturating
    every refcount at the new maximum, and set header.refcount_order.

    This is how a refcount_bits=1 image *with* snapshots is made: QEMU cannot
    take a snapshot at that width (the shared clusters would need refcount 2).
    """
    blocks = [e & ib.REFT_OFFSET_MASK for e in img.reftable if e & ib.REFT_OFFSET_MASK]
    assert len(blocks) == 1, "only images with one refcount block"
    clusters = -(-img.file_size // img.cluster_size)
    counts = [img.refcount(c) for c in range(clusters)]
    width = 1 << order
    top = (1 << width) - 1
    per_block = img.cluster_size * 8 // width
    assert clusters <= per_block
    raw = bytearray(img.cluster_size)
    for index, count in enumerate(counts):
        value = min(count, top)
        if width >= 8:
            raw[index * width // 8 : (index + 1) * width // 8] = value.to_bytes(width // 8, "big")
        else:
            raw[index * width // 8] |= value << ((index * width) % 8)
    img.write_bytes(blocks[0], bytes(raw))
    img.set_header("refcount_order", order)
    img.reload()


def cluster_of(img: ib.Qcow2Image, offset: int) -> int:
    """Host cluster index of a byte offset."""
    return offset >> img.cluster_bits


def append_clusters(img: ib.Qcow2Image, count: int = 1, fill: bytes = b"\0") -> int:
    """Grow the file by ``count`` clusters (after rounding it up to a cluster)
    and give each new cluster refcount 1; returns the first new offset."""
    start = _round_up(img.file_size, img.cluster_size)
    img.truncate(start + count * img.cluster_size)
    if fill != b"\0":
        img.write_bytes(start, (fill * (img.cluster_size // len(fill))) * count)
    for index in range(count):
        set_refcount(img, cluster_of(img, start) + index, 1)
    return start


def beyond_eof(img: ib.Qcow2Image, clusters: int = 4) -> int:
    """A cluster-aligned offset ``clusters`` clusters past the end of the file."""
    return _round_up(img.file_size, img.cluster_size) + clusters * img.cluster_size


# --------------------------------------------------------------------------
# L2 entries and compressed descriptors (§1.4, §1.6)
# --------------------------------------------------------------------------


def l2_slot(img: ib.Qcow2Image, guest: int) -> tuple[int, int, int]:
    """``(l2_offset, index, entry)`` of the guest cluster at ``guest``."""
    _, l2_offset, index = img.guest_to_l2(guest)
    assert l2_offset, f"guest offset {guest:#x} has no L2 table"
    return l2_offset, index, img.l2_tables[l2_offset][index]


def l2_entries(img: ib.Qcow2Image) -> list[tuple[int, int, int]]:
    """Every non-zero active L2 entry as ``(l2_offset, index, entry)``."""
    return [
        (l2_offset, index, entry)
        for l2_offset, table in sorted(img.l2_tables.items())
        for index, entry in enumerate(table)
        if entry
    ]


def free_slot(img: ib.Qcow2Image, l2_offset: int, start: int = 1) -> int:
    """The first index >= ``start`` of an all-zero entry of the L2 table."""
    table = img.l2_tables[l2_offset]
    bitmaps = img.l2_bitmaps.get(l2_offset)
    for index in range(start, len(table)):
        if table[index] == 0 and (bitmaps is None or bitmaps[index] == 0):
            return index
    raise AssertionError(f"no free entry in L2 table {l2_offset:#x}")


def csize_shift(img: ib.Qcow2Image) -> int:
    """QEMU's csize_shift: where the sector count field starts (§1.6)."""
    return 62 - (img.cluster_bits - 8)


def decode_compressed(img: ib.Qcow2Image, entry: int) -> tuple[int, int]:
    """``(host byte offset, number of 512-byte sectors)`` of a compressed descriptor."""
    shift = csize_shift(img)
    offset = entry & ((1 << shift) - 1)
    sectors = ((entry >> shift) & ((1 << (img.cluster_bits - 8)) - 1)) + 1
    return offset, sectors


def compressed_span(img: ib.Qcow2Image, entry: int) -> tuple[int, int]:
    """``(host byte offset, byte length)`` QEMU reads for a compressed descriptor."""
    offset, sectors = decode_compressed(img, entry)
    return offset, sectors * 512 - (offset & 511)


def encode_compressed(img: ib.Qcow2Image, offset: int, sectors: int, *, copied: bool = False) -> int:
    """A compressed descriptor for ``sectors`` sectors at host byte ``offset``."""
    shift = csize_shift(img)
    assert 1 <= sectors <= 1 << (img.cluster_bits - 8)
    assert offset < 1 << shift
    entry = ib.OFLAG_COMPRESSED | ((sectors - 1) << shift) | offset
    return entry | (ib.OFLAG_COPIED if copied else 0)


def compressed_slots(img: ib.Qcow2Image) -> list[tuple[int, int, int]]:
    """Every compressed active L2 entry as ``(l2_offset, index, entry)``."""
    return [s for s in l2_entries(img) if s[2] & ib.OFLAG_COMPRESSED]


# --------------------------------------------------------------------------
# A minimal snapshot (for the data-file image QEMU will not snapshot)
# --------------------------------------------------------------------------


def add_blank_snapshot(img: ib.Qcow2Image, name: bytes = b"s1") -> int:
    """Append a snapshot table of one entry whose L1 table is a zero-filled
    copy of the active L1's size (both in new clusters with refcount 1), as
    QEMU would write for a snapshot of an empty disk.  Returns the offset of
    the new snapshot table."""
    l1_size = img.header["l1_size"]
    l1_offset = append_clusters(img, -(-l1_size * 8 // img.cluster_size) or 1)
    extra = struct.pack(">QQ", 0, img.header["size"])  # vm_state_size_large, disk_size
    entry = struct.pack(">QIHHIIQII", l1_offset, l1_size, 1, len(name), 0, 0, 0, 0, len(extra))
    entry += extra + b"1" + name
    entry += bytes(_round_up(len(entry), 8) - len(entry))
    table = append_clusters(img, 1)
    img.write_bytes(table, entry)
    img.set_header("snapshots_offset", table)
    img.set_header("nb_snapshots", 1)
    img.reload()
    return table


# --------------------------------------------------------------------------
# Building blocks for recipes
# --------------------------------------------------------------------------


def semi_random(path: Path, clusters: int, cluster_size: int = CLUSTER, seed: int = 7) -> Path:
    """A raw file whose clusters are half random bytes, half zeros: each
    compresses to about half a cluster, so compressed payloads of
    consecutive clusters cross host cluster boundaries."""
    rng = random.Random(seed)
    half = cluster_size // 2
    with open(path, "wb") as f:
        for _ in range(clusters):
            f.write(rng.randbytes(half) + bytes(cluster_size - half))
    return path


def convert_compressed(src: Path, dst: Path, options: dict[str, object], fmt: str = "raw") -> None:
    """``qemu-img convert -c -O qcow2 -o options src dst``."""
    argv: list[str | os.PathLike[str]] = [ib.QEMU_IMG, "convert", "-q", "-c", "-f", fmt, "-O", "qcow2"]
    if options:
        argv += ["-o", ",".join(f"{k}={'on' if v is True else 'off' if v is False else v}" for k, v in options.items())]
    ib.run_tool(argv + [src, dst])


def qemu_io(path: Path, *commands: str, access: ib.Access = ib.PLAIN) -> None:
    """Run qemu-io commands on ``path`` (failures raise)."""
    ib.qemu_io(path, *commands, access=access)


# --------------------------------------------------------------------------
# Clean images the consistency tests patch (name -> builder(path, workdir))
# --------------------------------------------------------------------------

#: Where the zlib/zstd recipes put things: normal data in guest cluster 0,
#: compressed pattern clusters at 1 MiB and 1 MiB + 64 KiB.
COMPRESSED_GUEST = MIB
SMALL_VIRTUAL = 16 * MIB


def _compressed(path: Path, work: Path, options: dict[str, object]) -> None:
    ib.create(path, SMALL_VIRTUAL, {"cluster_size": CLUSTER, **options})
    qemu_io(
        path,
        "write -P 0x11 0 64k",
        f"write -c -P 0x22 {COMPRESSED_GUEST} 64k",
        f"write -c -P 0x33 {COMPRESSED_GUEST + CLUSTER} 64k",
    )


def _compressed_spread(path: Path, work: Path, options: dict[str, object]) -> None:
    """Four half-random clusters converted with -c: payloads of ~32 KiB that
    pack across host cluster boundaries, then one normal cluster."""
    raw = semi_random(work / f"{path.stem}.src.raw", 4)
    raw_size = raw.stat().st_size
    with open(raw, "r+b") as f:
        f.truncate(SMALL_VIRTUAL)
    convert_compressed(raw, path, {"cluster_size": CLUSTER, **options})
    qemu_io(path, f"write -P 0x44 {raw_size} 64k")


def _small_cluster_compressed(path: Path, work: Path) -> None:
    ib.create(path, MIB, {"cluster_size": 4 * KIB})
    qemu_io(path, "write -P 0x11 0 4k", "write -c -P 0x22 64k 4k")


def _data_file(path: Path, work: Path, raw: bool = True) -> None:
    data = work / f"{path.stem}.data.raw"
    options: dict[str, object] = {"cluster_size": CLUSTER, "data_file": str(data)}
    if raw:
        options["data_file_raw"] = True
    ib.create(path, SMALL_VIRTUAL, options)
    qemu_io(path, "write -P 0x11 0 64k", "write -P 0x22 2M 128k")


def _two_snapshots(path: Path, work: Path) -> None:
    """Data, then two snapshots: the L2 table and data cluster have refcount 3."""
    ib.create(path, SMALL_VIRTUAL, {"cluster_size": CLUSTER})
    qemu_io(path, "write -P 0x11 0 64k")
    ib.snapshot_create(path, "a")
    ib.snapshot_create(path, "b")


def _snapshot_empty_then_data(path: Path, work: Path) -> None:
    """A snapshot of an empty 2 GiB disk (its L1 table is all zeros), then
    data: the zero-filled snapshot L1 cluster is what a bad L1 entry lands on."""
    ib.create(path, 2 * GIB, {"cluster_size": CLUSTER})
    ib.snapshot_create(path, "empty")
    qemu_io(path, "write -P 0x11 0 64k")


def _rc_order(order: int) -> Callable[[Path, Path], None]:
    def build(path: Path, work: Path) -> None:
        ib.create(path, SMALL_VIRTUAL, {"cluster_size": CLUSTER, "refcount_bits": 1 << order})
        qemu_io(path, "write -P 0x11 0 64k", "write -P 0x22 1M 64k")

    return build


def _rc1_with_snapshot(path: Path, work: Path) -> None:
    """A 16-bit image with data and a snapshot, re-encoded at refcount_bits=1:
    the clusters the snapshot shares need refcount 2 (catalogue §2.11)."""
    ib.create(path, SMALL_VIRTUAL, {"cluster_size": CLUSTER})
    qemu_io(path, "write -P 0x11 0 64k")
    ib.snapshot_create(path, "snap")
    reencode_refcounts(ib.Qcow2Image(path), 0)


def _tiny_rc64(path: Path, work: Path) -> None:
    """512-byte clusters with 64-bit refcounts: a refcount block covers only
    64 clusters (32 KiB), so the image has several refcount blocks."""
    ib.create(path, 256 * KIB, {"cluster_size": 512, "refcount_bits": 64})
    qemu_io(path, "write -P 0x11 0 64k")


def _vmstate(path: Path, work: Path) -> None:
    """VM state written with qemu-io ``write -b``: it lives past the disk."""
    ib.create(path, SMALL_VIRTUAL, {"cluster_size": CLUSTER})
    qemu_io(path, "write -P 0x11 0 64k", "write -b -P 0x33 0 64k")


RECIPES: dict[str, Callable[[Path, Path], None]] = {
    "zlib": lambda p, w: _compressed(p, w, {}),
    "zstd": lambda p, w: _compressed(p, w, {"compression_type": "zstd"}),
    "extl2-zlib": lambda p, w: _compressed(p, w, {"extended_l2": True}),
    "spread-zlib": lambda p, w: _compressed_spread(p, w, {}),
    "spread-zstd": lambda p, w: _compressed_spread(p, w, {"compression_type": "zstd"}),
    "small-zlib": _small_cluster_compressed,
    "data-file": _data_file,
    "data-file-nonraw": lambda p, w: _data_file(p, w, raw=False),
    "snap2x": _two_snapshots,
    "snap-empty": _snapshot_empty_then_data,
    "rc1": _rc_order(0),
    "rc1-snap": _rc1_with_snapshot,
    "tiny-rc64": _tiny_rc64,
    "vmstate": _vmstate,
}


# --------------------------------------------------------------------------
# Variants for the differential test
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One image for the differential test, built by ``build(path, workdir)``."""

    name: str
    build: Callable[[Path, Path], None]
    access: ib.Access = ib.PLAIN


def _io(*commands: str) -> Callable[[Path], None]:
    """A step: qemu-io commands."""
    return lambda path: qemu_io(path, *commands)


def _populate(cluster_size: int, size: int, *, compressed: bool = True) -> Callable[[Path], None]:
    """Full clusters, an unaligned write across a cluster boundary, the last
    cluster, a zero write over allocated data, a discard, a compressed
    cluster and an overwrite (which reallocates nothing)."""
    cs = cluster_size
    cmds = [
        f"write -P 0xa1 0 {2 * cs}",
        f"write -P 0xb2 {4 * cs - 700} 1400",
        f"write -P 0xc3 {size - cs} {cs}",
        f"write -P 0xd4 {8 * cs} {cs}",
        f"write -z {8 * cs} {cs}",  # zero cluster that keeps its allocation (v3)
        f"write -P 0xe5 {10 * cs} {cs}",
        f"discard {10 * cs} {cs}",
        f"write -P 0xa2 0 {cs}",
    ]
    if compressed:
        cmds.append(f"write -c -P 0xf6 {12 * cs} {cs}")
    return _io(*cmds)


def _recipe(size: int, options: dict[str, object], *steps: Callable[[Path], None], **create: object):
    """``qemu-img create`` with options, then each step on the image."""

    def build(path: Path, work: Path) -> None:
        ib.create(path, size, options, **create)  # type: ignore[arg-type]
        for step in steps:
            step(path)

    return build


def _snap(name: str) -> Callable[[Path], None]:
    return lambda path: ib.snapshot_create(path, name)


def _snap_delete(name: str) -> Callable[[Path], None]:
    return lambda path: ib.run_tool([ib.QEMU_IMG, "snapshot", "-q", "-d", name, path])


def _amend(**options: object) -> Callable[[Path], None]:
    text = ",".join(f"{k}={v}" for k, v in options.items())
    return lambda path: ib.run_tool([ib.QEMU_IMG, "amend", "-q", "-f", "qcow2", "-o", text, path])


def _resize(size: str, shrink: bool = False) -> Callable[[Path], None]:
    return lambda path: ib.run_tool([ib.QEMU_IMG, "resize", "-q", *(["--shrink"] if shrink else []), path, size])


def _bitmap(name: str, granularity: int | None = None) -> Callable[[Path], None]:
    return lambda path: ib.bitmap_add(path, name, granularity=granularity)


def _reverse_writes(cluster_size: int, count: int) -> Callable[[Path], None]:
    """One cluster at a time from the last to the first: every host cluster
    follows the previous guest cluster's, so nearly all are fragmented."""
    return _io(*(f"write -P {0x10 + i % 0xE0:#x} {i * cluster_size} {cluster_size}" for i in reversed(range(count))))


def _check_repair(mode: str) -> Callable[[Path], None]:
    """``qemu-img check -r MODE``: leaks freed, or the refcount structure
    rebuilt from scratch (a new refcount table at the end of the file)."""
    return lambda path: ib.run_tool([ib.QEMU_IMG, "check", "-q", "-r", mode, path], check=False)


def _bitmap_remove(name: str) -> Callable[[Path], None]:
    return lambda path: ib.run_tool([ib.QEMU_IMG, "bitmap", "--remove", path, name])


def _zero_first_data_refcount(img: ib.Qcow2Image) -> None:
    set_refcount(img, cluster_of(img, l2_slot(img, 0)[2] & ib.L2E_OFFSET_MASK), 0)


def _crash_after(*commands: str) -> Callable[[Path], None]:
    """qemu-io runs ``commands`` then aborts (as a crashed VM would): with
    lazy_refcounts the image stays dirty and its refcounts stale."""

    def step(path: Path) -> None:
        import resource
        import subprocess

        argv = [ib.QEMU_IO]
        for cmd in (*commands, "abort"):
            argv += ["-c", cmd]
        subprocess.run(
            argv + ["-f", "qcow2", str(path)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)),
        )

    return step


def _patch(change: Callable[[ib.Qcow2Image], object]) -> Callable[[Path], None]:
    return lambda path: change(ib.Qcow2Image(path))


def _raise_first_data_refcount(img: ib.Qcow2Image) -> None:
    """Refcount + 1 for guest cluster 0's data cluster: a leak; after a
    snapshot (refcount 2, COPIED clear) nothing else, without one a COPIED
    corruption too (refcount 2 but COPIED set)."""
    add_refcount(img, cluster_of(img, l2_slot(img, 0)[2] & ib.L2E_OFFSET_MASK), 1)


def _l2_table_twice_in_active_l1(img: ib.Qcow2Image) -> None:
    """l1[1] names l1[0]'s L2 table too, with every refcount and COPIED flag
    made consistent (L2 table and its data clusters at refcount 2, COPIED
    cleared): ``qemu-img check`` passes and walks the table twice, counting
    its clusters twice in allocated-clusters."""
    l2_offset = img.l1[0] & ib.L1E_OFFSET_MASK
    assert l2_offset and img.l1[1] == 0
    img.set_l1(0, l2_offset)
    img.set_l1(1, l2_offset)
    add_refcount(img, cluster_of(img, l2_offset), 1)
    for index, entry in enumerate(img.l2_tables[l2_offset]):
        if entry & ib.L2E_OFFSET_MASK and not entry & ib.OFLAG_COMPRESSED:
            img.set_l2(l2_offset, index, entry & ~ib.OFLAG_COPIED)
            add_refcount(img, cluster_of(img, entry & ib.L2E_OFFSET_MASK), 1)


def _size_not_multiple_of_512(img: ib.Qcow2Image) -> None:
    """header.size 100 bytes past a whole number of sectors: QEMU uses
    size / 512 sectors (catalogue §1.1), qemu-img create never writes this."""
    img.set_header("size", img.header["size"] + 100)


def _forget_snapshots(img: ib.Qcow2Image) -> None:
    """nb_snapshots set to 0, snapshots_offset kept: QEMU ignores the table,
    so the table and what only the snapshot used become leaks."""
    assert img.header["nb_snapshots"] and img.header["snapshots_offset"]
    img.set_header("nb_snapshots", 0)


def _bitmap_entry_all_ones(img: ib.Qcow2Image) -> None:
    """bm0.table[2] becomes 1 ("all ones", §1.9) and its data cluster is
    freed (refcount 0): consistent, and the bitmap still loads."""
    entry = img.bitmap("bm0").table[2]
    data = entry & ib.BME_TABLE_OFFSET_MASK
    assert data
    img.set_bitmap_table("bm0", 2, 1)
    set_refcount(img, cluster_of(img, data), 0)


def _with_backing(fmt: str) -> Callable[[Path, Path], None]:
    def build(path: Path, work: Path) -> None:
        base = work / f"{path.stem}.backing.{fmt}"
        if fmt == "raw":
            base.write_bytes(b"\x5a" * (2 * MIB))
            with open(base, "r+b") as f:
                f.truncate(SMALL_VIRTUAL)
        else:
            ib.create(base, SMALL_VIRTUAL, {"cluster_size": 4 * KIB})
            qemu_io(base, "write -P 0x5a 0 1M")
        ib.create(path, SMALL_VIRTUAL, {"cluster_size": CLUSTER}, backing=base, backing_fmt=fmt)
        qemu_io(path, "write -P 0x11 4k 8k", "write -P 0x22 2M 64k", "write -c -P 0x33 3M 64k")

    return build


def _from_recipe(name: str) -> Callable[[Path, Path], None]:
    return RECIPES[name]


def _shared_base(name: str) -> Callable[[Path, Path], None]:
    from baseimages import BASES

    return lambda path, work: BASES[name].build(path)


_P16 = _populate(CLUSTER, SMALL_VIRTUAL)

VARIANTS: list[Variant] = [
    # versions and cluster sizes
    Variant("v2-64k", _recipe(SMALL_VIRTUAL, {"compat": "0.10"}, _populate(CLUSTER, SMALL_VIRTUAL))),
    Variant("v3-512b", _recipe(2 * MIB, {"cluster_size": 512}, _populate(512, 2 * MIB))),
    Variant("v3-4k", _recipe(8 * MIB, {"cluster_size": 4 * KIB}, _populate(4 * KIB, 8 * MIB))),
    Variant("v3-64k", _recipe(SMALL_VIRTUAL, {}, _P16)),
    Variant("v3-2m", _recipe(64 * MIB, {"cluster_size": 2 * MIB}, _populate(2 * MIB, 64 * MIB))),
    Variant("v3-shared-base", _shared_base("v3")),
    Variant("v2-shared-base", _shared_base("v2")),
    # refcount widths
    *(
        Variant(f"refcount-bits-{1 << order}", _recipe(SMALL_VIRTUAL, {"refcount_bits": 1 << order}, _P16))
        for order in range(7)
    ),
    Variant("refcount-bits-64-512b", _from_recipe("tiny-rc64")),
    Variant(
        "refcount-bits-4-amended-with-snapshot",
        _recipe(SMALL_VIRTUAL, {}, _P16, _snap("s1"), _io("write -P 0x77 0 64k"), _amend(refcount_bits=4)),
    ),
    # extended L2
    Variant(
        "v3-2m-three-l2-tables",
        _recipe(
            2 << 40,
            {"cluster_size": 2 * MIB},
            _io(
                "write -P 1 0 4M",
                "write -P 2 600G 2M",
                "write -c -P 3 1100G 2M",
                f"write -P 4 {1100 * GIB + 2 * MIB} 1k",
            ),
        ),
    ),
    Variant(
        "extl2-2m-three-l2-tables",
        _recipe(
            1 << 40,
            {"cluster_size": 2 * MIB, "extended_l2": True},
            _io("write -P 1 0 3M", "write -P 2 300G 64k", "write -P 3 600G 2M"),
        ),
    ),
    Variant("zero-size-disk-with-snapshot", _recipe(0, {}, _snap("empty"))),
    Variant("extl2-64k", _recipe(SMALL_VIRTUAL, {"extended_l2": True}, _P16, _io("write -P 0x99 5k 3k"))),
    Variant(
        "extl2-2m",
        _recipe(
            64 * MIB,
            {"extended_l2": True, "cluster_size": 2 * MIB},
            _populate(2 * MIB, 64 * MIB),
            _io("write -P 0x99 70k 1k"),
        ),
    ),
    Variant("extl2-shared-base", _shared_base("extl2")),
    Variant("extl2-zlib", _from_recipe("extl2-zlib")),
    # compression
    Variant("zlib-patterns", _from_recipe("zlib")),
    Variant("zstd-patterns", _from_recipe("zstd")),
    Variant("zlib-spread", _from_recipe("spread-zlib")),
    Variant("zstd-spread", _from_recipe("spread-zstd")),
    Variant("zlib-4k-clusters", _from_recipe("small-zlib")),
    Variant(
        "zstd-overwritten",
        _recipe(
            SMALL_VIRTUAL,
            {"compression_type": "zstd"},
            _io(
                "write -c -P 1 0 64k",
                "write -c -P 2 64k 64k",
                "write -P 3 0 64k",
                "write -c -P 4 1M 64k",
                "discard 64k 64k",
            ),
        ),
    ),
    # refcount-related features
    Variant("lazy-refcounts", _recipe(SMALL_VIRTUAL, {"lazy_refcounts": True}, _P16)),
    Variant(
        "lazy-refcounts-dirty-after-crash",
        _recipe(SMALL_VIRTUAL, {"lazy_refcounts": True}, _crash_after("write -P 1 0 64k", "write -P 2 1M 64k")),
    ),
    Variant(
        "leak-raised-shared-refcount", _recipe(SMALL_VIRTUAL, {}, _P16, _snap("s"), _patch(_raise_first_data_refcount))
    ),
    Variant("leak-raised-copied-refcount", _recipe(SMALL_VIRTUAL, {}, _P16, _patch(_raise_first_data_refcount))),
    Variant("leak-unused-cluster", _recipe(SMALL_VIRTUAL, {}, _P16, _patch(lambda img: append_clusters(img, 2)))),
    Variant(
        "leak-failed-rc1-snapshot",
        _recipe(
            SMALL_VIRTUAL,
            {"refcount_bits": 1},
            _P16,
            lambda p: ib.run_tool([ib.QEMU_IMG, "snapshot", "-c", "s", p], check=False),
        ),
    ),
    Variant("rc1-with-snapshot-overflow", _from_recipe("rc1-snap")),
    # backing and data files
    Variant("backing-qcow2", _with_backing("qcow2")),
    Variant("backing-raw", _with_backing("raw")),
    Variant("data-file-raw", _from_recipe("data-file")),
    Variant("data-file", _from_recipe("data-file-nonraw")),
    Variant(
        "data-file-extl2",
        lambda p, w: (
            ib.create(p, SMALL_VIRTUAL, {"extended_l2": True, "data_file": str(w / f"{p.stem}.raw")}),
            qemu_io(p, "write -P 1 0 64k", "write -P 2 1M 5k"),
        )[0],
    ),
    # snapshots
    Variant("snapshot-shared-base", _shared_base("snapshot")),
    Variant("snapshots-two", _from_recipe("snap2x")),
    Variant("snapshot-of-empty-disk", _from_recipe("snap-empty")),
    Variant(
        "snapshots-with-writes-between",
        _recipe(
            SMALL_VIRTUAL,
            {},
            _P16,
            _snap("a"),
            _io("write -P 1 0 128k", "write -c -P 2 3M 64k"),
            _snap("b"),
            _io("write -P 3 64k 64k", "discard 12M 1M"),
            _snap("c"),
            _io("write -z 0 64k"),
        ),
    ),
    Variant(
        "snapshot-deleted",
        _recipe(SMALL_VIRTUAL, {}, _P16, _snap("a"), _io("write -P 1 0 128k"), _snap("b"), _snap_delete("a")),
    ),
    Variant("snapshot-v2", _recipe(SMALL_VIRTUAL, {"compat": "0.10"}, _P16, _snap("old"), _io("write -P 9 0 64k"))),
    Variant("snapshot-extl2", _recipe(SMALL_VIRTUAL, {"extended_l2": True}, _P16, _snap("s"), _io("write -P 9 1k 2k"))),
    Variant("vm-state", _from_recipe("vmstate")),
    # bitmaps
    Variant("bitmaps-shared-base", _shared_base("bitmaps")),
    Variant(
        "bitmaps-three",
        _recipe(
            SMALL_VIRTUAL, {}, _bitmap("a", 512), _bitmap("b"), _P16, _bitmap("c", 1 << 20), _io("write -P 1 5M 1M")
        ),
    ),
    # preallocation
    Variant("prealloc-metadata", _recipe(SMALL_VIRTUAL, {"preallocation": "metadata"}, _io("write -P 1 1M 64k"))),
    Variant("prealloc-falloc", _recipe(SMALL_VIRTUAL, {"preallocation": "falloc"}, _io("write -P 1 1M 64k"))),
    Variant("prealloc-full", _recipe(4 * MIB, {"preallocation": "full"})),
    Variant(
        "prealloc-metadata-extl2",
        _recipe(SMALL_VIRTUAL, {"preallocation": "metadata", "extended_l2": True}, _io("write -P 1 1M 8k")),
    ),
    # layouts
    Variant("fragmented-reverse-writes", _recipe(SMALL_VIRTUAL, {}, _reverse_writes(CLUSTER, 24))),
    Variant("fragmented-reverse-writes-4k", _recipe(2 * MIB, {"cluster_size": 4 * KIB}, _reverse_writes(4 * KIB, 300))),
    Variant(
        "v3-64k-70-l2-tables-two-batches",
        _recipe(
            40 * GIB,
            {},
            _io(*(f"write -{'c' if i % 7 == 0 else ''}P {i + 1} {i * 512 * MIB} 64k" for i in range(70))),
            _snap("s"),
            _io(*(f"write -P 0xee {i * 512 * MIB + 64 * KIB} 4k" for i in range(0, 70, 3))),
        ),
    ),
    Variant(
        "refcount-bits-64-512b-reftable-grown",
        _recipe(12 * MIB, {"cluster_size": 512, "refcount_bits": 64}, _io("write -P 1 0 8M", "write -P 2 10M 64k")),
    ),
    Variant(
        "repaired-after-refcount-rebuild",
        _recipe(SMALL_VIRTUAL, {}, _P16, _patch(_zero_first_data_refcount), _check_repair("all")),
    ),
    Variant(
        "repaired-leaks",
        _recipe(SMALL_VIRTUAL, {}, _P16, _snap("s"), _patch(_raise_first_data_refcount), _check_repair("leaks")),
    ),
    Variant("bitmap-removed", _recipe(SMALL_VIRTUAL, {}, _bitmap("a", 512), _bitmap("b"), _P16, _bitmap_remove("a"))),
    Variant("grown", _recipe(SMALL_VIRTUAL, {}, _P16, _resize("+2G"), _io("write -P 1 2G 64k"))),
    Variant("shrunk", _recipe(3 * GIB, {}, _io("write -P 1 0 64k", "write -P 2 2G 64k"), _resize("1G", True))),
    Variant("virtual-size-not-multiple-of-cluster", _recipe(10 * MIB + 3 * 512, {}, _io("write -P 1 10M 1536"))),
    Variant(
        "downgraded-to-v2",
        _recipe(SMALL_VIRTUAL, {}, _populate(CLUSTER, SMALL_VIRTUAL, compressed=False), _amend(compat="0.10")),
    ),
    Variant("empty", _recipe(SMALL_VIRTUAL, {})),
    # made by hand, consistent for qemu-img check
    Variant(
        "crafted-l2-table-twice-in-active-l1",
        _recipe(2 * GIB, {}, _io("write -P 1 0 128k", "write -P 2 1M 64k"), _patch(_l2_table_twice_in_active_l1)),
    ),
    Variant(
        "crafted-nb-snapshots-zeroed",
        _recipe(SMALL_VIRTUAL, {}, _P16, _snap("s"), _io("write -P 5 0 128k"), _patch(_forget_snapshots)),
    ),
    Variant(
        "crafted-bitmap-entry-all-ones",
        lambda p, w: (_shared_base("bitmaps")(p, w), _patch(_bitmap_entry_all_ones)(p))[0],
    ),
    Variant("crafted-size-not-multiple-of-512", _recipe(SMALL_VIRTUAL, {}, _P16, _patch(_size_not_multiple_of_512))),
    Variant("luks-shared-base", _shared_base("luks"), ib.LUKS_ACCESS),
]
