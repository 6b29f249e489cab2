"""The reserved-bits, feature-bits, padding, alignment and readability rows
(tests/test_rule_rows.py runs them; test_differential.py compares qemu-img
check's figures on every patched image).

Each row names a clean base image (see baseimages.py) and a patch function
that introduces exactly one defect with the test-side patcher and returns
where it wrote; the QEMU expectation is what ``qemu-img check`` says.  The
structure-path syntax lives in the ``path_*`` builders, so a change of
location syntax is one edit.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import imagebuilder as ib
from baseimages import BITMAP_TABLE_INDEX, PATCH_GUEST_OFFSET, PATCH_L1_INDEX, PATCH_L2_INDEX
from harness import Row, Target, check, path_l1, path_l2, path_reftable

MISALIGN = 0x200  # a multiple of 512 that is not a multiple of the 64 KiB cluster


# --- structure paths (regular expressions), all in one place ---------------
# Syntax from the brief: header.<field>, l1[3], l2@0x50000[3], reftable[2],
# snapshots[0](snap1).l1[2], extensions[1](bitmaps).reserved32,
# bitmaps[0](bm0).flags, bitmaps[0](bm0).table[2], bitmaps[0](bm0).padding.
# Snapshots are labelled by their *name* like bitmaps (the brief's example
# `snapshots[0](snap1)` for a snapshot made by `qemu-img snapshot -c snap1`).


def path_header(field: str) -> str:
    """A header field; snapshots_offset may also be spelt like the dump's snapshot_offset."""
    if field == "snapshots_offset":
        return r"header\.snapshots?_offset"
    if field == "padding":
        return r"header\.padding(\[\d+\])?"
    return re.escape(f"header.{field}")


def path_snapshot(index: int, snapshot_id: str, rest: str) -> str:
    """A part of snapshot table entry ``index``, labelled by its unique id
    (``rest`` like ``.l1[2]``)."""
    return re.escape(f"snapshots[{index}]({snapshot_id}){rest}")


def path_extension(index: int, name: str | None, field: str) -> str:
    """A field of header extension ``index``; ``name`` None accepts any label."""
    label = r"\([^)]*\)" if name is None else re.escape(f"({name})")
    return re.escape(f"extensions[{index}]") + label + re.escape(f".{field}")


def path_bitmap(index: int, name: str, rest: str) -> str:
    """A part of bitmap directory entry ``index`` (``rest`` like ``.flags``)."""
    if rest == ".padding":
        return re.escape(f"bitmaps[{index}]({name}).padding") + r"(\[\d+\])?"
    return re.escape(f"bitmaps[{index}]({name}){rest}")


# ---------------------------------------------------------------------------
# patch functions
# ---------------------------------------------------------------------------


def _header_field(name: str, value: Callable[[int], int]) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.set_header(name, value(img.header[name]))
        return Target((off,), path_header(name))

    return patch


def _patch_l1_bits(bits: int) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        off = img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | bits)
        return Target((off,), path_l1(PATCH_L1_INDEX))

    return patch


def patch_l1_reserved_unallocated(img: ib.Qcow2Image) -> Target:
    """Reserved bit 0 in an otherwise empty L1 entry (l1[1]): e != 0, so it counts."""
    assert img.l1[1] == 0
    off = img.set_l1(1, 0x1)
    return Target((off,), path_l1(1))


def patch_snapshot_l1_reserved(img: ib.Qcow2Image) -> Target:
    """Reserved bit 8 in entry 2 of snap1's L1 table."""
    snap = img.snapshot("snap1")
    assert snap.l1[PATCH_L1_INDEX], "recipe must leave l1[2] allocated in the snapshot"
    off = img.set_snapshot_l1("snap1", PATCH_L1_INDEX, snap.l1[PATCH_L1_INDEX] | 0x100)
    return Target((off,), path_snapshot(0, "1", f".l1[{PATCH_L1_INDEX}]"))


def _l2_target(l2_offset: int, index: int, off: int) -> Target:
    return Target((off,), path_l2(l2_offset, index))


def _patched_l2(img: ib.Qcow2Image) -> tuple[int, int, int]:
    """``(l2_offset, l2_index, entry)`` of the cluster at PATCH_GUEST_OFFSET
    (l1[2] with standard L2 entries, l1[4] with extended ones; index 3)."""
    _, l2_offset, l2_index = img.guest_to_l2(PATCH_GUEST_OFFSET)
    assert l2_index == PATCH_L2_INDEX
    entry = img.l2_tables[l2_offset][l2_index]
    assert entry & ib.L2E_OFFSET_MASK, "recipe must allocate the patched cluster"
    return l2_offset, l2_index, entry


def patch_l2_reserved_allocated(img: ib.Qcow2Image) -> Target:
    """Reserved bit 1 in an allocated L2 entry."""
    l2_offset, index, entry = _patched_l2(img)
    return _l2_target(l2_offset, index, img.set_l2(l2_offset, index, entry | 0x2))


def patch_l2_reserved_unallocated(img: ib.Qcow2Image) -> Target:
    """Reserved bit 57 in an unallocated L2 entry (index 7 of the same table)."""
    l2_offset, _, _ = _patched_l2(img)
    assert img.l2_tables[l2_offset][7] == 0
    return _l2_target(l2_offset, 7, img.set_l2(l2_offset, 7, 1 << 57))


def patch_misaligned_data_cluster(img: ib.Qcow2Image) -> Target:
    """Host offset of a NORMAL cluster moved by 512 bytes."""
    l2_offset, index, entry = _patched_l2(img)
    return _l2_target(l2_offset, index, img.set_l2(l2_offset, index, entry + MISALIGN))


def patch_misaligned_preallocated(img: ib.Qcow2Image) -> Target:
    """Turn a NORMAL cluster into ZERO_ALLOC with an offset moved by 512 bytes."""
    l2_offset, index, entry = _patched_l2(img)
    value = (entry + MISALIGN) | ib.OFLAG_ZERO
    return _l2_target(l2_offset, index, img.set_l2(l2_offset, index, value))


def patch_misaligned_l2_table(img: ib.Qcow2Image) -> Target:
    """L1 entry pointing 512 bytes into its L2 table."""
    off = img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] + MISALIGN)
    return Target((off,), path_l1(PATCH_L1_INDEX))


def patch_reftable_reserved(img: ib.Qcow2Image) -> Target:
    """Reserved bit 0 in refcount table entry 0."""
    off = img.set_reftable(0, img.reftable[0] | 0x1)
    return Target((off,), path_reftable(0))


def patch_misaligned_refblock(img: ib.Qcow2Image) -> Target:
    """Refcount table entry 0 pointing 512 bytes into its refblock."""
    off = img.set_reftable(0, img.reftable[0] + MISALIGN)
    return Target((off,), path_reftable(0))


def _bitmap_table_patch(change: Callable[[int], int]) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        entry = img.bitmap("bm0").table[BITMAP_TABLE_INDEX]
        assert entry & ib.BME_TABLE_OFFSET_MASK, "recipe must serialize bm0.table[2]"
        off = img.set_bitmap_table("bm0", BITMAP_TABLE_INDEX, change(entry))
        return Target((off,), path_bitmap(0, "bm0", f".table[{BITMAP_TABLE_INDEX}]"))

    return patch


def _bitmap_field_patch(which: int, name: str, change: Callable[[int], int]) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        entry = img.bitmap(which)
        off = img.set_bitmap_field(which, name, change(entry.fields[name]))
        bm_name = entry.name.decode()
        return Target((off, entry.offset), path_bitmap(which, bm_name, f".{name}"))

    return patch


def patch_bitmap_dir_padding(img: ib.Qcow2Image) -> Target:
    """Padding byte 2 after bm0's name (3-byte name: 5 padding bytes)."""
    entry = img.bitmap("bm0")
    off = img.set_bitmap_padding("bm0", 2, 0x41)
    return Target((off, entry.padding_offset, entry.offset), path_bitmap(0, "bm0", ".padding"))


def _bitmaps_ext_patch(name: str, change: Callable[[int], int]) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        ext = img.extension(ib.EXT_BITMAPS)
        field_off = img.ext_field_offset(ib.EXT_BITMAPS, name)
        current = img.read_int(field_off, ib.EXT_FIELDS[ib.EXT_BITMAPS][name][1])
        img.set_ext_field(ib.EXT_BITMAPS, name, change(current))
        return Target(
            (field_off, ext.offset, ext.data_offset),
            path_extension(ext.index, "bitmaps", name),
        )

    return patch


def patch_misaligned_crypto_header(img: ib.Qcow2Image) -> Target:
    """FDE extension offset moved by 512 bytes."""
    ext = img.extension(ib.EXT_CRYPTO)
    field_off = img.ext_field_offset(ib.EXT_CRYPTO, "offset")
    current = img.read_int(field_off, "Q")
    img.set_ext_field(ib.EXT_CRYPTO, "offset", current + MISALIGN)
    return Target((field_off, ext.offset, ext.data_offset), path_extension(ext.index, None, "offset"))


def patch_snapshot_table(img: ib.Qcow2Image) -> Target:
    """snapshots_offset moved by 512 bytes."""
    off = img.set_header("snapshots_offset", img.header["snapshots_offset"] + MISALIGN)
    return Target((off,), path_header("snapshots_offset"))


def patch_snapshot_l1_table(img: ib.Qcow2Image) -> Target:
    """snap1's l1_table_offset moved by 512 bytes."""
    snap = img.snapshot("snap1")
    off = img.set_snapshot_field("snap1", "l1_table_offset", snap.fields["l1_table_offset"] + MISALIGN)
    return Target((off, snap.offset), path_snapshot(0, "1", ".l1_table_offset"))


def patch_header_padding(img: ib.Qcow2Image) -> Target:
    """Header byte 107 (padding byte 2) set."""
    off = img.set_header_padding(2, 0x5A)
    return Target((off, ib.HEADER_PADDING_OFFSET), path_header("padding"))


def patch_header_length_unaligned(img: ib.Qcow2Image) -> Target:
    """header_length 108 (not a multiple of 8), with the extension area moved
    down to start at byte 108 so that QEMU still parses it (it would refuse
    the image with "Header extension too large" otherwise)."""
    start = img.header_length
    last = img.extensions[-1]
    end = last.offset + 8 + (last.length + 7) // 8 * 8 + 8  # including the end marker
    area = img.read_bytes(start, end - start)
    img.write_bytes(108, area + bytes(start - 108))
    off = img.set_header("header_length", 108)
    return Target((off,), path_header("header_length"))


def _truncate_to(size: int) -> Callable[[ib.Qcow2Image], Target]:
    def patch(img: ib.Qcow2Image) -> Target:
        img.truncate(size)
        # the finding may point at the start of the header, at the end of the
        # file, or (v3) at header_length which the file does not reach
        return Target((0, size, ib.HEADER_FIELDS["header_length"][0]), r"(header|file)(\..*)?")

    return patch


ROWS: list[Row] = [
    # --- reserved bits -----------------------------------------------------
    Row(
        "l1-reserved-bits",
        "v3",
        _patch_l1_bits(0x100),
        check(2, "ERROR found L1 entry with reserved bits set"),
        "bit8",
        absent=("misaligned-l2-table",),
    ),
    Row(
        "l1-reserved-bits",
        "v3",
        patch_l1_reserved_unallocated,
        check(2, "ERROR found L1 entry with reserved bits set"),
        "unallocated-entry",
    ),
    Row(
        "l1-reserved-bits",
        "v3",
        _patch_l1_bits(1 << 62),
        check(2, "ERROR found L1 entry with reserved bits set"),
        "bit62",
    ),
    Row(
        "l1-reserved-bits",
        "snapshot",
        patch_snapshot_l1_reserved,
        check(2, "ERROR found L1 entry with reserved bits set"),
        "snapshot-l1",
    ),
    Row(
        "l2-reserved-bits",
        "v3",
        patch_l2_reserved_allocated,
        check(2, "ERROR found l2 entry with reserved bits set"),
        "allocated",
        absent=("misaligned-data-cluster",),
    ),
    Row(
        "l2-reserved-bits",
        "extl2",
        patch_l2_reserved_allocated,
        check(2, "ERROR found l2 entry with reserved bits set"),
        "extended-l2",
    ),
    Row(
        "l2-reserved-bits",
        "v3",
        patch_l2_reserved_unallocated,
        check(2, "ERROR found l2 entry with reserved bits set"),
        "unallocated",
    ),
    Row(
        "reftable-reserved-bits",
        "v3",
        patch_reftable_reserved,
        check(2, "ERROR refcount table entry 0 has reserved bits set"),
        absent=("misaligned-refcount-block",),
    ),
    Row(
        "bitmap-table-reserved-bits",
        "bitmaps",
        _bitmap_table_patch(lambda e: e | 0x2),
        check(1, "Could not read bitmap_table table from image for bitmap 'bm0'"),
        absent=("bitmap-table-invalid-all-ones", "misaligned-bitmap-data"),
    ),
    Row(
        "bitmap-flags-reserved",
        "bitmaps",
        _bitmap_field_patch(0, "flags", lambda f: f | 0x8),
        check(1, "doesn't satisfy the constraints"),
        "bm0-bit3",
    ),
    Row(
        "bitmap-flags-reserved",
        "bitmaps",
        _bitmap_field_patch(1, "flags", lambda f: f | 0x80000000),
        check(1, "doesn't satisfy the constraints"),
        "bm1-bit31",
    ),
    Row(
        "bitmaps-ext-reserved-nonzero",
        "bitmaps",
        _bitmaps_ext_patch("reserved32", lambda v: 1),
        check(1, "bitmaps_ext: Reserved field is not zero"),
    ),
    Row(
        "incompat-unknown-bits",
        "v3",
        _header_field("incompatible_features", lambda v: v | 1 << 5),
        check(1, "Unknown incompatible feature: 20"),
        "bit5",
    ),
    Row(
        "incompat-unknown-bits",
        "v3",
        _header_field("incompatible_features", lambda v: v | 1 << 63),
        check(1, "Unknown incompatible feature: 8000000000000000"),
        "bit63",
    ),
    Row("compat-unknown-bits", "v3", _header_field("compatible_features", lambda v: v | 1 << 7), check(0)),
    Row("autoclear-unknown-bits", "v3", _header_field("autoclear_features", lambda v: v | 1 << 5), check(0)),
    Row("header-padding-nonzero", "v3", patch_header_padding, check(0)),
    Row("bitmap-dir-padding-nonzero", "bitmaps", patch_bitmap_dir_padding, check(0)),
    # --- invalid entries ---------------------------------------------------
    Row(
        "bitmap-table-invalid-all-ones",
        "bitmaps",
        _bitmap_table_patch(lambda e: e | 0x1),
        check(1, "Could not read bitmap_table table from image for bitmap 'bm0'"),
        absent=("bitmap-table-reserved-bits", "misaligned-bitmap-data"),
    ),
    # --- misaligned --------------------------------------------------------
    Row(
        "misaligned-l1-table",
        "v3",
        _header_field("l1_table_offset", lambda v: v + MISALIGN),
        check(1, "Active L1 table offset invalid"),
    ),
    Row(
        "misaligned-l2-table",
        "v3",
        patch_misaligned_l2_table,
        check(2, "Table is not cluster aligned; L1 entry corrupted"),
        absent=("l1-reserved-bits",),
    ),
    Row(
        "misaligned-data-cluster",
        "v3",
        patch_misaligned_data_cluster,
        check(2, "Data cluster is not properly aligned; L2 entry corrupted."),
        absent=("misaligned-preallocated-cluster", "l2-reserved-bits"),
    ),
    Row(
        "misaligned-data-cluster",
        "extl2",
        patch_misaligned_data_cluster,
        check(2, "Data cluster is not properly aligned; L2 entry corrupted."),
        "extended-l2",
        absent=("l2-reserved-bits",),
    ),
    Row(
        "misaligned-preallocated-cluster",
        "v3",
        patch_misaligned_preallocated,
        check(2, "Preallocated cluster is not properly aligned; L2 entry corrupted."),
        absent=("misaligned-data-cluster", "l2-reserved-bits"),
    ),
    Row(
        "misaligned-refcount-table",
        "v3",
        _header_field("refcount_table_offset", lambda v: v + MISALIGN),
        check(1, "Reference count table offset invalid"),
    ),
    Row(
        "misaligned-refcount-block",
        "v3",
        patch_misaligned_refblock,
        check(1, "refcount block 0 is not cluster aligned; refcount table entry corrupted"),
        absent=("reftable-reserved-bits",),
    ),
    Row(
        "misaligned-snapshot-table",
        "snapshot",
        patch_snapshot_table,
        check(1, "snapshot table offset invalid"),
    ),
    Row(
        "misaligned-snapshot-l1-table",
        "snapshot",
        patch_snapshot_l1_table,
        check(2, "L1 table is not cluster aligned; snapshot table entry corrupted"),
    ),
    Row(
        "misaligned-bitmap-directory",
        "bitmaps",
        _bitmaps_ext_patch("bitmap_directory_offset", lambda v: v + MISALIGN),
        check(1, "bitmaps_ext: invalid bitmap directory offset"),
    ),
    Row(
        "misaligned-bitmap-table",
        "bitmaps",
        _bitmap_field_patch(0, "bitmap_table_offset", lambda v: v + MISALIGN),
        check(1, "doesn't satisfy the constraints"),
    ),
    Row(
        "misaligned-bitmap-data",
        "bitmaps",
        _bitmap_table_patch(lambda e: e + MISALIGN),
        check(1, "Could not read bitmap_table table from image for bitmap 'bm0'"),
        absent=("bitmap-table-reserved-bits", "bitmap-table-invalid-all-ones"),
    ),
    Row(
        "misaligned-crypto-header",
        "luks",
        patch_misaligned_crypto_header,
        check(1, "is not a multiple of cluster size"),
    ),
    Row("header-length-unaligned", "v3", patch_header_length_unaligned, check(0)),
    # --- reading at all ----------------------------------------------------
    Row(
        "header-bad-magic",
        "v3",
        _header_field("magic", lambda v: 0x514649FA),
        check(1, "Image is not in qcow2 format"),
    ),
    Row(
        "header-bad-version",
        "v3",
        _header_field("version", lambda v: 4),
        check(1, "Unsupported qcow2 version 4"),
        "4",
    ),
    Row(
        "header-bad-version",
        "v3",
        _header_field("version", lambda v: 1),
        check(1, "Unsupported qcow2 version 1"),
        "1",
    ),
    Row(
        "header-cluster-bits-range",
        "v3",
        _header_field("cluster_bits", lambda v: 22),
        check(1, "Unsupported cluster size: 2^22"),
        "22",
    ),
    Row(
        "header-cluster-bits-range",
        "v3",
        _header_field("cluster_bits", lambda v: 8),
        check(1, "Unsupported cluster size: 2^8"),
        "8",
    ),
    # A v3 header is 104+ bytes; 100 bytes is shorter than header_length (112).
    Row("header-file-too-short", "v3", _truncate_to(100), check(1, "qcow2 header too short"), "v3-100-bytes"),
    # 104 bytes hold the whole fixed header but not header_length (112) bytes.
    Row(
        "header-file-too-short",
        "v3",
        _truncate_to(108),
        check(2, "exceeding the end of the file"),
        "v3-108-bytes",
    ),
    Row(
        "header-file-too-short",
        "v2",
        _truncate_to(50),
        check(2, "exceeding the end of the file"),
        "v2-50-bytes",
    ),
    Row("header-file-too-short", "v3", _truncate_to(0), check(1, "Image is not in qcow2 format"), "empty"),
]

# The brief's list of rules that must each have a row.
REQUIRED_RULES = {
    "l1-reserved-bits",
    "l2-reserved-bits",
    "reftable-reserved-bits",
    "bitmap-table-reserved-bits",
    "bitmap-flags-reserved",
    "bitmaps-ext-reserved-nonzero",
    "incompat-unknown-bits",
    "compat-unknown-bits",
    "autoclear-unknown-bits",
    "header-padding-nonzero",
    "bitmap-dir-padding-nonzero",
    "bitmap-table-invalid-all-ones",
    "misaligned-l1-table",
    "misaligned-l2-table",
    "misaligned-data-cluster",
    "misaligned-preallocated-cluster",
    "misaligned-refcount-table",
    "misaligned-refcount-block",
    "misaligned-snapshot-table",
    "misaligned-snapshot-l1-table",
    "misaligned-bitmap-directory",
    "misaligned-bitmap-table",
    "misaligned-bitmap-data",
    "misaligned-crypto-header",
    "header-length-unaligned",
    "header-bad-magic",
    "header-bad-version",
    "header-cluster-bits-range",
    "header-file-too-short",
}
