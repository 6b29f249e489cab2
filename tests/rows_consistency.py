"""L1/L2 entry, extended L2, compressed cluster, external data file,
refcount and metadata overlap rows (catalogue §2.6-§2.12), run by
tests/test_rule_rows.py (and compared with qemu-img check by
test_differential.py).

Each row patches a copy of a real image made by qemu-img / qemu-io
(baseimages.py and :data:`consistency_builders.RECIPES`) so that it has one
defect: a COPIED flag set or cleared, a refcount zeroed, lowered or raised,
an L2 entry pointed at the L1 table or at its own L2 table with the refcount
raised to match (the overlap ``qemu-img check`` misses), a file cut short,
refcount blocks shared or moved past the end, compressed descriptors
damaged, ...  Where the catalogue says QEMU is silent, the row names the
runtime failure (a read or write through qemu-io) instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import consistency_builders as cb
import imagebuilder as ib
from baseimages import PATCH_GUEST_OFFSET, PATCH_L1_INDEX, PATCH_L2_INDEX
from harness import QemuExpect, Row, Target, check, path_l1, path_l2, path_reftable

COPIED = ib.OFLAG_COPIED
MISALIGN = 0x200
SPARE = 7  # an all-zero entry of the patched L2 table (index 3 holds data)

#: Every rule this file tests (their codes and severities are the registry's).
RULES = (
    "l2-out-of-file",
    "l1-copied-mismatch",
    "l1-beyond-vmstate",
    "l2-zero-flag-v2",
    "l2-data-out-of-file",
    "l2-data-partly-out-of-file",
    "l2-copied-mismatch",
    "l2-copied-on-unallocated",
    "l2-offset0-copied-without-data-file",
    "extl2-alloc-and-zero",
    "extl2-unallocated-with-alloc-bits",
    "extl2-compressed-bitmap-nonzero",
    "extl2-zero-flag-set",
    "extl2-allocated-empty-bitmap",
    "compressed-copied",
    "compressed-with-data-file",
    "compressed-offset-high-bits",
    "compressed-out-of-file",
    "compressed-oversize",
    "compressed-undecompressible",
    "data-file-offset-mismatch",
    "data-file-copied-missing",
    "data-file-snapshots",
    "refcount-zero-used",
    "refcount-too-low",
    "refcount-leak",
    "refcount-overflow",
    "refcount-beyond-eof",
    "refblock-refcount-not-one",
    "refblock-out-of-file",
    "reftable-coverage-gap",
    "metadata-refcount-not-one",
    "metadata-overlap",
    "l1-entry-points-to-metadata",
    "l2-shared-data-cluster",
    "reftable-reserved-bits",
    "misaligned-refcount-block",
)

EOF_CORRUPTION = "ERROR: counting reference for region exceeding the end of the file by one cluster or more"


CLEAN = check(0, "No errors were found on the image.")


# --- structure paths (regular expressions) -----------------------------------


def at_refcount(img: ib.Qcow2Image, cluster: int) -> Target:
    """The stored refcount of ``cluster``: ``refblock@0x20000[7]``."""
    offset, _, _ = cb.refcount_entry(img, cluster)
    order = img.header["refcount_order"]
    block_bits = img.cluster_bits + 3 - order
    block = img.reftable[cluster >> block_bits] & ib.REFT_OFFSET_MASK
    within = cluster & ((1 << block_bits) - 1)
    return Target((offset,), re.escape(f"refblock@{block:#x}[{within}]"))


def at_l2(img: ib.Qcow2Image, l2_offset: int, index: int, *also: int) -> Target:
    """An L2 entry (``also``: more acceptable offsets)."""
    return Target((img.l2_entry_offset(l2_offset, index), *also), path_l2(l2_offset, index))


# --- patch helpers -----------------------------------------------------------


def _patched(img: ib.Qcow2Image) -> tuple[int, int, int]:
    """``(l2_offset, index, entry)`` of the data cluster at PATCH_GUEST_OFFSET."""
    l2_offset, index, entry = cb.l2_slot(img, PATCH_GUEST_OFFSET)
    assert index == PATCH_L2_INDEX and entry & ib.L2E_OFFSET_MASK, "recipe must allocate the patched cluster"
    return l2_offset, index, entry


def _spare(img: ib.Qcow2Image) -> int:
    """The L2 table of the patched cluster, after checking its SPARE entry is empty."""
    l2_offset, _, _ = _patched(img)
    assert img.l2_tables[l2_offset][SPARE] == 0
    return l2_offset


def _set_spare(value: int) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset = _spare(img)
        img.set_l2(l2_offset, SPARE, value)
        return at_l2(img, l2_offset, SPARE)

    return patch


def _change_patched(change: Callable[[int], int], bitmap: Callable[[int], int] | None = None):
    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset, index, entry = _patched(img)
        new_bitmap = None if bitmap is None else bitmap(img.l2_bitmaps[l2_offset][index])
        img.set_l2(l2_offset, index, change(entry), bitmap=new_bitmap)
        return at_l2(img, l2_offset, index)

    return patch


def _spare_bitmap(bitmap: int) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset = _spare(img)
        assert img.l2_bitmaps[l2_offset][SPARE] == 0
        img.set_l2(l2_offset, SPARE, 0, bitmap=bitmap)
        return at_l2(img, l2_offset, SPARE)

    return patch


def _l1(index: int, change: Callable[[ib.Qcow2Image, int], int]) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.set_l1(index, change(img, img.l1[index]))
        return Target((off,), path_l1(index))

    return patch


def _unchanged_l1(index: int) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        assert img.l1[index], "recipe must allocate this L1 entry"
        return Target((img.l1_entry_offset(index),), path_l1(index))

    return patch


def patch_shrink_header_size(img: ib.Qcow2Image) -> Target:
    """Virtual size 1 GiB: l1[2] (data at 1 GiB + 3 clusters) becomes VM state."""
    img.set_header("size", 1 << 30)
    return Target((img.l1_entry_offset(PATCH_L1_INDEX),), path_l1(PATCH_L1_INDEX))


def patch_cut_last_data_cluster(img: ib.Qcow2Image) -> Target:
    """Cut the file in the middle of its last cluster, the patched data cluster."""
    l2_offset, index, entry = _patched(img)
    data = entry & ib.L2E_OFFSET_MASK
    assert data + img.cluster_size == img.file_size, "the patched cluster must be the last one"
    img.truncate(data + img.cluster_size // 2)
    return at_l2(img, l2_offset, index)


# --- compressed clusters ----------------------------------------------------


def _first_compressed(img: ib.Qcow2Image) -> tuple[int, int, int]:
    slots = cb.compressed_slots(img)
    assert slots, "recipe must have compressed clusters"
    return slots[0]


def _change_compressed(change: Callable[[ib.Qcow2Image, int], int], bitmap: int | None = None):
    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset, index, entry = _first_compressed(img)
        img.set_l2(l2_offset, index, change(img, entry), bitmap=bitmap)
        return at_l2(img, l2_offset, index)

    return patch


def _new_compressed(offset: Callable[[ib.Qcow2Image, int], int], sectors: int = 1):
    """A new compressed entry in a free slot of the compressed cluster's L2
    table (the existing payloads keep their references: no leak)."""

    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset, index, entry = _first_compressed(img)
        slot = cb.free_slot(img, l2_offset, index + 1)
        coffset, _ = cb.decode_compressed(img, entry)
        img.set_l2(l2_offset, slot, cb.encode_compressed(img, offset(img, coffset), sectors))
        return at_l2(img, l2_offset, slot)

    return patch


def patch_oversize(img: ib.Qcow2Image) -> Target:
    """Payload 0 (about 32 KiB at the start of host cluster 5) claims 130
    sectors (66560 bytes > cs + 511), reaching into host cluster 6, whose
    stored refcount is raised by one so that the refcounts still agree."""
    l2_offset, index, entry = _first_compressed(img)
    coffset, _ = cb.decode_compressed(img, entry)
    assert coffset % img.cluster_size == 0
    img.set_l2(l2_offset, index, cb.encode_compressed(img, coffset, 130))
    end = coffset + 130 * 512
    assert end < img.file_size
    for cluster in range(cb.cluster_of(img, coffset) + 1, cb.cluster_of(img, end - 1) + 1):
        cb.add_refcount(img, cluster, 1)
    return at_l2(img, l2_offset, index)


def patch_corrupt_payload(img: ib.Qcow2Image) -> Target:
    """Overwrite the first 4 bytes of the first compressed payload (the
    second payload starts 20 bytes later in the zstd recipe): a raw deflate
    block of type 3 (reserved) / a zstd frame without its magic number."""
    l2_offset, index, entry = _first_compressed(img)
    coffset, _ = cb.decode_compressed(img, entry)
    img.write_bytes(coffset, b"\xff" * 4)
    return at_l2(img, l2_offset, index)


def patch_compressed_in_data_file(img: ib.Qcow2Image) -> Target:
    """Guest cluster 1 of a data-file image turned into a compressed descriptor."""
    l2_offset, index, entry = cb.l2_slot(img, cb.CLUSTER)
    img.set_l2(l2_offset, index, cb.encode_compressed(img, cb.CLUSTER, 1))
    return at_l2(img, l2_offset, index)


# --- external data file --------------------------------------------------------

DATA_FILE_GUEST = 2 * cb.MIB  # the recipe writes 128 KiB there


def patch_data_file_host_moved(img: ib.Qcow2Image) -> Target:
    """Guest 2 MiB mapped to data file offset 3 MiB (COPIED kept)."""
    l2_offset, index, entry = cb.l2_slot(img, DATA_FILE_GUEST)
    assert entry == COPIED | DATA_FILE_GUEST
    img.set_l2(l2_offset, index, COPIED | 3 * cb.MIB)
    return at_l2(img, l2_offset, index)


def patch_data_file_copied(img: ib.Qcow2Image) -> Target:
    """COPIED cleared on the entry of guest 2 MiB."""
    l2_offset, index, entry = cb.l2_slot(img, DATA_FILE_GUEST)
    img.set_l2(l2_offset, index, entry & ~COPIED)
    return at_l2(img, l2_offset, index)


def patch_data_file_snapshot(img: ib.Qcow2Image) -> Target:
    """A snapshot table entry (blank L1) added to a data-file image."""
    cb.add_blank_snapshot(img)
    return Target((ib.HEADER_FIELDS["nb_snapshots"][0],), re.escape("header.nb_snapshots"))


# --- refcounts ----------------------------------------------------------------


def _refcount(cluster: Callable[[ib.Qcow2Image], int], value: Callable[[int], int]):
    def patch(img: ib.Qcow2Image) -> Target:
        index = cluster(img)
        cb.set_refcount(img, index, value(img.refcount(index)))
        return at_refcount(img, index)

    return patch


def _patched_data_cluster(img: ib.Qcow2Image) -> int:
    return cb.cluster_of(img, _patched(img)[2] & ib.L2E_OFFSET_MASK)


def _first_data_cluster(img: ib.Qcow2Image) -> int:
    return cb.cluster_of(img, cb.l2_slot(img, 0)[2] & ib.L2E_OFFSET_MASK)


def patch_overflow_shared_entry(img: ib.Qcow2Image) -> Target:
    """refcount_bits=1: a second L2 entry (with COPIED, as refcount 1 wants)
    maps guest cluster 0's data cluster, which now needs refcount 2."""
    l2_offset, index, entry = cb.l2_slot(img, 0)
    slot = cb.free_slot(img, l2_offset)
    img.set_l2(l2_offset, slot, entry)
    return at_refcount(img, cb.cluster_of(img, entry & ib.L2E_OFFSET_MASK))


def patch_rc1_snapshot(img: ib.Qcow2Image) -> Target:
    """No patch: the refcount_bits=1 image with a snapshot already overflows
    on the shared L2 table and data cluster.  They are adjacent, so the
    overflow is one finding for the run (issue 8): the target is its first
    cluster, the L2 table."""
    l2_offset, _, _ = cb.l2_slot(img, 0)
    assert cb.cluster_of(img, l2_offset) + 1 == _first_data_cluster(img)
    return at_refcount(img, cb.cluster_of(img, l2_offset))


def patch_unused_cluster(img: ib.Qcow2Image) -> Target:
    """A zero cluster appended to the 8-cluster file, with refcount 1."""
    offset = cb.append_clusters(img)
    return at_refcount(img, cb.cluster_of(img, offset))


def patch_refcount_beyond_eof(img: ib.Qcow2Image) -> Target:
    """Refcount 1 for cluster 20 of an 8-cluster file."""
    cluster = 20
    assert cluster * img.cluster_size >= img.file_size
    cb.set_refcount(img, cluster, 1)
    return at_refcount(img, cluster)


def patch_refblock_twice(img: ib.Qcow2Image) -> Target:
    """Refcount table entry 1 names refcount block 0's cluster again."""
    assert img.reftable[1] == 0
    off = img.set_reftable(1, img.reftable[0])
    return Target((off,), path_reftable(1))


def patch_refblock_past_eof(img: ib.Qcow2Image) -> Target:
    """Refcount table entry 1 names a cluster past the end of the file."""
    assert img.reftable[1] == 0
    off = img.set_reftable(1, cb.beyond_eof(img))
    return Target((off,), path_reftable(1))


def _reftable0(change: Callable[[int], int]) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        return Target((img.set_reftable(0, change(img.reftable[0])),), path_reftable(0))

    return patch


def patch_reftable_gap(img: ib.Qcow2Image) -> Target:
    """512-byte clusters, 64-bit refcounts: the refcount table entry of the
    second refcount block (clusters 64..127, all in use) set to 0."""
    assert img.reftable[1] & ib.REFT_OFFSET_MASK
    off = img.set_reftable(1, 0)
    return Target((off,), path_reftable(1))


def patch_l1_refcount_two(img: ib.Qcow2Image) -> Target:
    """The L1 table's cluster gets refcount 2 (one reference)."""
    cluster = cb.cluster_of(img, img.header["l1_table_offset"])
    cb.set_refcount(img, cluster, 2)
    return Target((cluster * img.cluster_size,), re.escape("l1"))


# --- overlaps -----------------------------------------------------------------


def patch_l2_entry_on_l1(raise_refcount: bool) -> Callable[[ib.Qcow2Image], Target]:
    """The spare L2 entry (no COPIED) maps the L1 table's cluster as data;
    with ``raise_refcount`` that cluster's refcount becomes 2 to match, and
    ``qemu-img check`` no longer notices (catalogue §2.12, §4.5)."""

    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset = _spare(img)
        l1 = img.header["l1_table_offset"]
        img.set_l2(l2_offset, SPARE, l1)
        if raise_refcount:
            cb.add_refcount(img, cb.cluster_of(img, l1), 1)
        return Target((l1, img.l2_entry_offset(l2_offset, SPARE)), path_l2(l2_offset, SPARE))

    return patch


def patch_l2_entry_on_own_table(img: ib.Qcow2Image) -> Target:
    """The spare L2 entry maps its own L2 table as data; the table's refcount
    becomes 2 and COPIED is cleared on its L1 entry, so the refcounts and
    COPIED flags all agree: ``qemu-img check`` passes (catalogue §4.5)."""
    l2_offset = _spare(img)
    img.set_l2(l2_offset, SPARE, l2_offset)
    cb.add_refcount(img, cb.cluster_of(img, l2_offset), 1)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] & ~COPIED)
    return Target((l2_offset, img.l2_entry_offset(l2_offset, SPARE)), path_l2(l2_offset, SPARE))


def patch_l1_on_snapshot_l1(raise_refcount: bool) -> Callable[[ib.Qcow2Image], Target]:
    """Active l1[1] names the (all-zero) L1 table of snapshot 'empty' as its
    L2 table: an active L2 table on top of an inactive L1 table."""

    def patch(img: ib.Qcow2Image) -> Target:
        snap_l1 = img.snapshot("empty").fields["l1_table_offset"]
        assert snap_l1 and not any(img.snapshot("empty").l1), "the snapshot L1 must be all zeros"
        assert img.l1[1] == 0
        img.set_l1(1, snap_l1)
        if raise_refcount:
            cb.add_refcount(img, cb.cluster_of(img, snap_l1), 1)
        return Target((snap_l1, img.l1_entry_offset(1)), re.escape(f"l2@{snap_l1:#x}") + r"(\[\d+\])?")

    return patch


def patch_shared_data(raise_refcount: bool) -> Callable[[ib.Qcow2Image], Target]:
    """The spare L2 entry maps the patched data cluster a second time; with
    ``raise_refcount`` COPIED is cleared on both entries and the refcount is
    2: consistent, but two guest clusters share one host cluster without a
    snapshot."""

    def patch(img: ib.Qcow2Image) -> Target:
        l2_offset, index, entry = _patched(img)
        data = entry & ib.L2E_OFFSET_MASK
        if raise_refcount:
            img.set_l2(l2_offset, index, data)
            img.set_l2(l2_offset, SPARE, data)
            cb.set_refcount(img, cb.cluster_of(img, data), 2)
        else:
            img.set_l2(l2_offset, SPARE, entry)
        return at_refcount(img, cb.cluster_of(img, data))

    return patch


# --- the table ---------------------------------------------------------------

ROWS: list[Row] = [
    # --- §2.6 L1 entries --------------------------------------------------------
    Row(
        "l2-out-of-file",
        "v3",
        _l1(1, lambda img, e: cb.beyond_eof(img)),
        (check(2, EOF_CORRUPTION),),
        absent=("l1-copied-mismatch",),
    ),
    Row(
        "l1-copied-mismatch",
        "v3",
        _l1(PATCH_L1_INDEX, lambda img, e: e & ~COPIED),
        (check(2, "ERROR OFLAG_COPIED L2 cluster: l1_index=2 l1_entry=60000 refcount=1"),),
        "cleared",
    ),
    Row(
        "l1-copied-mismatch",
        "snapshot",
        _l1(PATCH_L1_INDEX, lambda img, e: e | COPIED),
        (check(2, "ERROR OFLAG_COPIED L2 cluster: l1_index=2 l1_entry=8000000000060000 refcount=2"),),
        "set-on-shared",
    ),
    Row("l1-beyond-vmstate", "vmstate", _unchanged_l1(1), (CLEAN,), "qemu-io-write-b", clean_base="v3"),
    Row("l1-beyond-vmstate", "v3", patch_shrink_header_size, (CLEAN,), "size-shrunk"),
    # --- §2.7 standard L2 entries -------------------------------------------------
    Row(
        "l2-zero-flag-v2",
        "v2",
        _change_patched(lambda e: e | ib.OFLAG_ZERO),
        (CLEAN, QemuExpect("read", None, "Zero cluster entry found in pre-v3 image", f"read {PATCH_GUEST_OFFSET} 64k")),
    ),
    Row(
        "l2-data-out-of-file",
        "v3",
        _set_spare(4 << 20),
        (check(2, EOF_CORRUPTION),),
        absent=("l2-copied-mismatch", "l2-data-partly-out-of-file"),
    ),
    Row(
        "l2-data-partly-out-of-file",
        "v3",
        patch_cut_last_data_cluster,
        (CLEAN,),
        absent=("l2-data-out-of-file", "file-truncated"),
    ),
    Row(
        "l2-copied-mismatch",
        "v3",
        _change_patched(lambda e: e & ~COPIED),
        (check(2, "ERROR OFLAG_COPIED data cluster: l2_entry=70000 refcount=1"),),
    ),
    Row(
        "l2-copied-on-unallocated",
        "v3",
        _set_spare(COPIED | ib.OFLAG_ZERO),
        (CLEAN,),
        absent=("l2-offset0-copied-without-data-file", "l2-reserved-bits"),
    ),
    Row(
        "l2-offset0-copied-without-data-file",
        "v3",
        _set_spare(COPIED),
        (CLEAN,),
        absent=("l2-copied-on-unallocated", "l2-reserved-bits"),
    ),
    # --- §2.8 extended L2 ------------------------------------------------------------
    Row(
        "extl2-alloc-and-zero",
        "extl2",
        _change_patched(lambda e: e, lambda b: b | 1 << 32),
        (check(2, "Allocated cluster has corrupted subcluster allocation bitmap"),),
    ),
    Row(
        "extl2-unallocated-with-alloc-bits",
        "extl2",
        _spare_bitmap(0x1),
        (check(2, "ERROR: Unallocated cluster has non-zero subcluster allocation map"),),
    ),
    Row(
        "extl2-compressed-bitmap-nonzero",
        "extl2-zlib",
        _change_compressed(lambda img, e: e, bitmap=0x1),
        (check(2, "ERROR compressed cluster 16 with non-zero subcluster allocation bitmap"),),
    ),
    Row("extl2-zero-flag-set", "extl2", _change_patched(lambda e: e | ib.OFLAG_ZERO), (CLEAN,)),
    Row("extl2-allocated-empty-bitmap", "extl2", _change_patched(lambda e: e, lambda b: 0), (CLEAN,)),
    # --- §2.9 compressed clusters --------------------------------------------------
    Row(
        "compressed-copied",
        "zlib",
        _change_compressed(lambda img, e: e | COPIED),
        (check(2, "ERROR: coffset=0x60000: copied flag must never be set for compressed clusters"),),
    ),
    Row(
        "compressed-with-data-file",
        "data-file",
        patch_compressed_in_data_file,
        (check(2, "ERROR compressed cluster 1 with data file, entry=0x4000000000010000"),),
    ),
    Row(
        "compressed-offset-high-bits",
        "small-zlib",
        _new_compressed(lambda img, c: 1 << 56 | c),
        (check(2, EOF_CORRUPTION),),
    ),
    Row(
        "compressed-out-of-file",
        "zlib",
        _new_compressed(lambda img, c: cb.beyond_eof(img)),
        (check(2, EOF_CORRUPTION),),
        absent=("compressed-offset-high-bits", "compressed-oversize"),
    ),
    Row("compressed-oversize", "spread-zlib", patch_oversize, (CLEAN,), absent=("compressed-out-of-file",)),
    Row(
        "compressed-undecompressible",
        "zlib",
        patch_corrupt_payload,
        (CLEAN, QemuExpect("read", None, "read failed: Input/output error", f"read {cb.COMPRESSED_GUEST} 64k")),
        "zlib",
        deep=True,
    ),
    Row(
        "compressed-undecompressible",
        "zstd",
        patch_corrupt_payload,
        (CLEAN, QemuExpect("read", None, "read failed: Input/output error", f"read {cb.COMPRESSED_GUEST} 64k")),
        "zstd",
        deep=True,
    ),
    # --- §2.10 external data file ---------------------------------------------------
    Row(
        "data-file-offset-mismatch",
        "data-file",
        patch_data_file_host_moved,
        (
            CLEAN,
            QemuExpect(
                "read",
                None,
                "External data file host cluster offset 0x300000 does not match guest cluster offset: 0x200000",
                f"read {DATA_FILE_GUEST} 64k",
            ),
        ),
        "data-file-raw",
    ),
    Row(
        "data-file-offset-mismatch",
        "data-file-nonraw",
        patch_data_file_host_moved,
        (
            CLEAN,
            QemuExpect(
                "read",
                None,
                "External data file host cluster offset 0x300000 does not match guest cluster offset: 0x200000",
                f"read {DATA_FILE_GUEST} 64k",
            ),
        ),
        "data-file",
    ),
    Row(
        "data-file-copied-missing",
        "data-file",
        patch_data_file_copied,
        (check(2, "ERROR OFLAG_COPIED data cluster: l2_entry=200000 refcount=1"),),
    ),
    Row(
        "data-file-snapshots",
        "data-file",
        patch_data_file_snapshot,
        (check(2, "ERROR 1 snapshots in image with data file"),),
    ),
    # --- §2.11 refcounts ---------------------------------------------------------------
    Row(
        "refcount-zero-used",
        "v3",
        _refcount(_patched_data_cluster, lambda v: 0),
        (check(2, "ERROR cluster 7 refcount=0 reference=1"),),
        absent=("refcount-too-low", "refcount-leak"),
    ),
    Row(
        "refcount-too-low",
        "snap2x",
        _refcount(_first_data_cluster, lambda v: v - 1),
        (check(2, "ERROR cluster 5 refcount=2 reference=3"),),
        absent=("refcount-zero-used", "refcount-leak", "l2-copied-mismatch"),
    ),
    Row(
        "refcount-leak",
        "snap2x",
        _refcount(_first_data_cluster, lambda v: v + 1),
        (check(3, "Leaked cluster 5 refcount=4 reference=3"),),
        absent=("refcount-zero-used", "refcount-too-low", "l2-copied-mismatch"),
    ),
    Row(
        "refcount-leak",
        "v3",
        patch_unused_cluster,
        (check(3, "Leaked cluster 8 refcount=1 reference=0"),),
        "unused-cluster",
    ),
    Row(
        "refcount-overflow",
        "rc1",
        patch_overflow_shared_entry,
        (check(2, "ERROR: overflow cluster offset=0x50000"),),
        "shared-entry",
    ),
    Row(
        "refcount-overflow",
        "rc1-snap",
        patch_rc1_snapshot,
        (check(2, "ERROR: overflow cluster offset=0x50000"),),
        "snapshot",
        count=None,
        clean_base="rc1",
    ),
    Row("refcount-beyond-eof", "v3", patch_refcount_beyond_eof, (CLEAN,)),
    Row("refblock-refcount-not-one", "v3", patch_refblock_twice, (check(2, "ERROR refcount block 1 refcount=2"),)),
    Row("refblock-out-of-file", "v3", patch_refblock_past_eof, (check(2, "ERROR refcount block 1 is outside image"),)),
    Row(
        "reftable-coverage-gap", "tiny-rc64", patch_reftable_gap, (check(2, "ERROR cluster 64 refcount=0 reference=1"),)
    ),
    Row(
        "metadata-refcount-not-one", "v3", patch_l1_refcount_two, (check(3, "Leaked cluster 3 refcount=2 reference=1"),)
    ),
    Row(
        "reftable-reserved-bits",
        "v3",
        _reftable0(lambda e: e | 1),
        (check(2, "ERROR refcount table entry 0 has reserved bits set"),),
        absent=("misaligned-refcount-block",),
    ),
    Row(
        "misaligned-refcount-block",
        "v3",
        _reftable0(lambda e: e + MISALIGN),
        (check(1, "refcount block 0 is not cluster aligned; refcount table entry corrupted"),),
        absent=("reftable-reserved-bits",),
    ),
    # --- §2.12 overlaps ---------------------------------------------------------------
    Row(
        "metadata-overlap",
        "v3",
        patch_l2_entry_on_l1(True),
        (CLEAN,),
        "data-on-l1-refcount-raised",
        absent=("l1-entry-points-to-metadata",),
    ),
    Row(
        "metadata-overlap",
        "v3",
        patch_l2_entry_on_l1(False),
        (check(2, "ERROR cluster 3 refcount=1 reference=2"),),
        "data-on-l1",
    ),
    Row(
        "metadata-overlap",
        "v3",
        patch_l2_entry_on_own_table,
        (CLEAN,),
        "data-on-own-l2-table",
        absent=("l1-copied-mismatch", "l2-copied-mismatch"),
    ),
    Row(
        "l1-entry-points-to-metadata",
        "snap-empty",
        patch_l1_on_snapshot_l1(True),
        (CLEAN,),
        "on-snapshot-l1-refcount-raised",
        absent=("metadata-overlap",),
    ),
    Row(
        "l1-entry-points-to-metadata",
        "snap-empty",
        patch_l1_on_snapshot_l1(False),
        (check(2, "refcount=1 reference=2"),),
        "on-snapshot-l1",
    ),
    Row(
        "l2-shared-data-cluster",
        "v3",
        patch_shared_data(True),
        (CLEAN,),
        "refcount-raised",
        absent=("l2-copied-mismatch", "refcount-too-low"),
    ),
    Row(
        "l2-shared-data-cluster",
        "v3",
        patch_shared_data(False),
        (check(2, "ERROR cluster 7 refcount=1 reference=2"),),
        "refcount-one",
    ),
]
