"""Every constant of the qcow2 format in one place.

Sources: QEMU's ``docs/interop/qcow2.rst`` (the spec; comments name its
sections) and ``block/qcow2.h`` (QEMU's masks and limits).
"""

from __future__ import annotations

import re
import struct
from typing import Any


def field_offsets(layout: str, names: tuple[str, ...]) -> dict[str, int]:
    """Byte offset of each field of a big-endian struct ``layout`` (one name per
    format item, ``6s`` counting as one item)."""
    items = re.findall(r"\d*[a-zA-Z?]", layout.lstrip("<>!=@"))
    assert len(items) == len(names), (layout, names)
    return {name: struct.calcsize(">" + "".join(items[:index])) for index, name in enumerate(names)}


# --- Header (spec, "Header") -------------------------------------------------

QCOW_MAGIC = 0x514649FB  # "QFI\xfb"
SUPPORTED_VERSIONS = (2, 3)

#: Sectors: QEMU counts disk lengths and compressed sizes in 512-byte units.
SECTOR_SIZE = 512

#: The header fields in spec order, their struct format and byte offsets.
HEADER_FIELDS = (
    "magic",
    "version",
    "backing_file_offset",
    "backing_file_size",
    "cluster_bits",
    "size",
    "crypt_method",
    "l1_size",
    "l1_table_offset",
    "refcount_table_offset",
    "refcount_table_clusters",
    "nb_snapshots",
    "snapshot_offset",
    "incompatible_features",
    "compatible_features",
    "autoclear_features",
    "refcount_order",
    "header_length",
)
HEADER_FORMAT = ">IIQIIQIIQQIIQQQQII"
#: Byte offset of every header field, for findings.
HEADER_FIELD_OFFSETS = field_offsets(HEADER_FORMAT, HEADER_FIELDS)
#: A header cut shorter than this (magic, version, backing file, cluster_bits)
#: cannot be followed at all.
HEADER_MIN_READABLE = HEADER_FIELD_OFFSETS["size"]

#: The v2 header ends here; v3 fields follow up to byte 104.
V2_HEADER_LENGTH = 72
#: The fixed part of a v3 header (without the compression type byte).
V3_HEADER_LENGTH = 104
#: QEMU's sizeof(QCowHeader): byte 104 is the compression type, 105..111 are
#: padding that must be zero, anything past 112 is an unknown later field.
COMPRESSION_TYPE_OFFSET = 104
HEADER_PADDING_END = 112

#: QEMU's limits on cluster_bits (MIN_CLUSTER_BITS / MAX_CLUSTER_BITS).
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
#: Extended L2 needs 32 subclusters of at least 512 bytes.
MIN_EXTL2_CLUSTER_BITS = 14

CRYPT_NONE = 0
CRYPT_AES = 1
CRYPT_LUKS = 2

COMPRESSION_ZLIB = 0
COMPRESSION_ZSTD = 1
#: How messages name the compression types (spec, "Header", compression_type).
COMPRESSION_NAMES = {COMPRESSION_ZLIB: "zlib", COMPRESSION_ZSTD: "zstd"}

MAX_REFCOUNT_ORDER = 6

# Feature bits (§2.2).  The masks are the bits QEMU knows.
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_MASK = 0x1F

COMPAT_LAZY_REFCOUNTS = 1 << 0
COMPAT_MASK = 0x1

AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1
AUTOCLEAR_MASK = 0x3

FEATURE_TYPES = {0: "incompatible", 1: "compatible", 2: "autoclear"}

# --- Header extensions (§1.2) -----------------------------------------------

EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_CRYPTO_HEADER = 0x0537BE77
EXT_BITMAPS = 0x23852875
EXT_DATA_FILE = 0x44415441

#: The block driver names QEMU 7.2 knows, which a backing file format name
#: must be one of (compared byte for byte: "qCow2" is no driver).  Taken from
#: the "Supported formats" line of `qemu-img --help` of QEMU 7.2 (Debian
#: 12's build; the drivers built as modules are included there).
QEMU_DRIVERS = frozenset(
    b"blkdebug blklogwrites blkverify bochs cloop compress copy-before-write copy-on-read dmg file ftp ftps "
    b"gluster host_cdrom host_device http https iscsi iser luks nbd nfs null-aio null-co nvme parallels "
    b"preallocate qcow qcow2 qed quorum raw rbd replication snapshot-access ssh throttle vdi vhdx vmdk vpc "
    b"vvfat".split()
)
#: The protocol prefixes QEMU 7.2 knows (its drivers' protocol names): in a
#: file name, a ':' before any '/' makes the part before it a protocol, and
#: any other one is "Unknown protocol".  Found by opening an overlay whose
#: backing file is "NAME:x" for every driver name above and the protocol
#: variants (nbd+tcp, gluster+unix, ...) with QEMU 7.2's qemu-io; "json" is
#: not a driver but the pseudo-protocol of a block-node definition.
QEMU_PROTOCOLS = frozenset(
    b"blkdebug blkverify fat file ftp ftps gluster gluster+rdma gluster+tcp gluster+unix host_cdrom "
    b"host_device http https iscsi iser json nbd nbd+tcp nbd+unix nfs null-aio null-co nvme rbd ssh".split()
)
#: QEMU keeps at most this many bytes of a protocol name (char protocol[128]).
QEMU_PROTOCOL_NAME_MAX = 127

#: Names as QEMU's qcow2.py prints them.
EXT_NAMES = {
    EXT_BACKING_FORMAT: "Backing format",
    EXT_FEATURE_TABLE: "Feature table",
    EXT_CRYPTO_HEADER: "Crypto header",
    EXT_BITMAPS: "Bitmaps",
    EXT_DATA_FILE: "Data file",
}
#: Short names used in structure paths (``extensions[1](bitmaps)``).
EXT_SLUGS = {
    EXT_BACKING_FORMAT: "backing-format",
    EXT_FEATURE_TABLE: "feature-table",
    EXT_CRYPTO_HEADER: "crypto-header",
    EXT_BITMAPS: "bitmaps",
    EXT_DATA_FILE: "data-file",
}

#: Every extension starts with its magic and data length (two u32).
EXT_FRAMING_SIZE = 8
EXT_FRAMING_FIELDS = {"magic": 0, "length": 4}

FEATURE_TABLE_ENTRY_SIZE = 48
BITMAPS_EXT_SIZE = 24
BITMAPS_EXT_FORMAT = ">IIQQ"
#: Byte offset and width of each bitmaps extension field inside its data.
BITMAPS_EXT_FIELDS = {
    "nb_bitmaps": (0, 4),
    "reserved32": (4, 4),
    "bitmap_directory_size": (8, 8),
    "bitmap_directory_offset": (16, 8),
}
#: The full disk encryption header pointer: offset and length (two u64).
CRYPTO_EXT_SIZE = 16

MAX_BACKING_FILE_NAME = 1023

# --- L1 / L2 entries (§1.3 - §1.6) -------------------------------------------

OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1 << 0

L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L1E_RESERVED_MASK = 0x7F000000000001FF
L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2E_STD_RESERVED_MASK = 0x3F000000000001FE

#: QCOW_MAX_L1_SIZE: 32 MiB of L1 entries.
MAX_L1_SIZE = 0x2000000
#: C's INT_MAX: QEMU keeps the L1 entries a disk needs in an int
#: ("Image is too big" past it).
INT_MAX = 2**31 - 1

#: QEMU's cluster types (qcow2_get_cluster_type, spec, "Cluster mapping").
CLUSTER_UNALLOCATED = 0
CLUSTER_ZERO_PLAIN = 1
CLUSTER_ZERO_ALLOC = 2
CLUSTER_NORMAL = 3
CLUSTER_COMPRESSED = 4

#: L1, refcount table and bitmap table entries are one u64 each.
L1_ENTRY_SIZE = 8
REFTABLE_ENTRY_SIZE = 8
BITMAP_TABLE_ENTRY_SIZE = 8
L2_ENTRY_SIZE = 8
EXTL2_ENTRY_SIZE = 16
SUBCLUSTERS_PER_CLUSTER = 32
SUBCLUSTER_ALLOC_MASK = 0x00000000FFFFFFFF
SUBCLUSTER_ZERO_MASK = 0xFFFFFFFF00000000

# --- Refcounts (§1.7) --------------------------------------------------------

REFT_OFFSET_MASK = 0xFFFFFFFFFFFFFE00
REFT_RESERVED_MASK = 0x1FF
#: QCOW_MAX_REFTABLE_SIZE: 8 MiB.
MAX_REFTABLE_SIZE = 0x800000

# --- Snapshots (§1.8) --------------------------------------------------------

#: The fixed part of a snapshot table entry, its layout and field offsets.
SNAPSHOT_HEADER_SIZE = 40
SNAPSHOT_FORMAT = ">QIHHIIQII"
SNAPSHOT_FIELD_OFFSETS = field_offsets(
    SNAPSHOT_FORMAT,
    (
        "l1_table_offset",
        "l1_size",
        "id_str_size",
        "name_size",
        "date_sec",
        "date_nsec",
        "vm_clock_nsec",
        "vm_state_size32",
        "extra_data_size",
    ),
)
#: Fields of a snapshot's extra data, as byte offsets in the entry.
SNAPSHOT_EXTRA_FIELD_OFFSETS = {"vm_state_size_large": SNAPSHOT_HEADER_SIZE, "disk_size": SNAPSHOT_HEADER_SIZE + 8}
MAX_SNAPSHOTS = 65536
MAX_SNAPSHOTS_SIZE = 1024 * 65536
#: The longest structure judged cluster by cluster: QEMU's largest table
#: (the snapshot table, MAX_SNAPSHOTS_SIZE; L1 tables, refcount tables and
#: bitmap directories are smaller).  A longer extent is one QEMU refuses to
#: load (its own rule says so); only its first 64 MiB are mapped and judged.
MAX_MAPPED_EXTENT = MAX_SNAPSHOTS_SIZE
MAX_SNAPSHOT_EXTRA_DATA = 1024
#: A v3 snapshot entry needs vm_state_size_large and disk_size.
MIN_V3_SNAPSHOT_EXTRA_DATA = 16

# --- Bitmaps (§1.9) ----------------------------------------------------------

#: The fixed part of a bitmap directory entry, its layout and field offsets.
BITMAP_DIR_ENTRY_SIZE = 24
BITMAP_DIR_ENTRY_FORMAT = ">QIIBBHI"
BITMAP_ENTRY_FIELDS = field_offsets(
    BITMAP_DIR_ENTRY_FORMAT,
    (
        "bitmap_table_offset",
        "bitmap_table_size",
        "flags",
        "type",
        "granularity_bits",
        "name_size",
        "extra_data_size",
    ),
)
BME_FLAG_IN_USE = 1 << 0
BME_FLAG_AUTO = 1 << 1
BME_FLAG_EXTRA_DATA_COMPATIBLE = 1 << 2
#: Reserved per the spec (bits 3..31).  QEMU's BME_RESERVED_FLAGS is
#: 0xfffffffc: it also refuses bit 2.
BME_SPEC_RESERVED_FLAGS = 0xFFFFFFF8
BME_QEMU_RESERVED_FLAGS = 0xFFFFFFFC
BITMAP_TYPE_DIRTY_TRACKING = 1

BME_TABLE_ENTRY_OFFSET_MASK = 0x00FFFFFFFFFFFE00
BME_TABLE_ENTRY_RESERVED_MASK = 0xFF000000000001FE
BME_TABLE_ENTRY_FLAG_ALL_ONES = 1

MAX_BITMAPS = 65535
MAX_BITMAP_DIRECTORY_SIZE = 1024 * MAX_BITMAPS
BME_MAX_NAME_SIZE = 1023
BME_MIN_GRANULARITY_BITS = 9
BME_MAX_GRANULARITY_BITS = 31
BME_MAX_TABLE_SIZE = 0x8000000
BME_MAX_PHYS_SIZE = 0x20000000

# --- Encryption (§1.10) ------------------------------------------------------

LUKS_MAGIC = b"LUKS\xba\xbe"
LUKS_HEADER_SIZE = 592
LUKS_HEADER_FORMAT = ">6sH32s32s32sII20s32sI40s"
LUKS_KEY_SLOT_FORMAT = ">II32sII"
LUKS_HEADER_FIELDS = field_offsets(
    LUKS_HEADER_FORMAT,
    (
        "magic",
        "version",
        "cipher_name",
        "cipher_mode",
        "hash_spec",
        "payload_offset",
        "key_bytes",
        "mk_digest",
        "mk_digest_salt",
        "mk_digest_iterations",
        "uuid",
    ),
)
LUKS_KEY_SLOT_FIELDS = field_offsets(
    LUKS_KEY_SLOT_FORMAT,
    (
        "active",
        "iterations",
        "salt",
        "key_material_offset",
        "stripes",
    ),
)
LUKS_KEY_SLOT_SIZE = 48
LUKS_KEY_SLOTS = 8
#: The only LUKS header version QEMU's qcow2 encryption reads (LUKS1).
LUKS_VERSION = 1
#: A key slot's ``active`` word: in use, or not (the LUKS1 on-disk format).
LUKS_KEY_ENABLED = 0x00AC71F3
LUKS_KEY_DISABLED = 0x0000DEAD
#: The sectors the LUKS1 header and its key slot layout are aligned to:
#: 4 KiB of 512-byte sectors.
LUKS_HEADER_SECTORS = 4096 // SECTOR_SIZE


def round_up(value: int, alignment: int) -> int:
    """Round ``value`` up to a multiple of ``alignment`` (a power of two)."""
    return (value + alignment - 1) & ~(alignment - 1)


def set_bits(value: int) -> list[int]:
    """The numbers of the bits set in ``value``, lowest first."""
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


def field(raw: bytes, offsets: dict[str, int], name: str, width: int) -> int:
    """The big-endian ``width``-byte field ``name`` of a fixed structure."""
    start = offsets[name]
    return int.from_bytes(raw[start : start + width], "big")


def disk_length(size: int) -> int:
    """QEMU's view of a virtual size: whole 512-byte sectors (``size`` rounded down)."""
    return size // SECTOR_SIZE * SECTOR_SIZE


def snapshot_entry_used(id_str_size: int, name_size: int, extra_data_size: int) -> int:
    """Bytes a snapshot table entry uses: fixed part, extra data, id and name."""
    return SNAPSHOT_HEADER_SIZE + extra_data_size + id_str_size + name_size


def snapshot_entry_size(id_str_size: int, name_size: int, extra_data_size: int) -> int:
    """Bytes a snapshot table entry occupies (padded to 8)."""
    return round_up(snapshot_entry_used(id_str_size, name_size, extra_data_size), 8)


def bitmap_entry_size(extra_data_size: int, name_size: int) -> int:
    """Bytes a bitmap directory entry occupies (padded to 8)."""
    return round_up(BITMAP_DIR_ENTRY_SIZE + extra_data_size + name_size, 8)


def compressed_ranges(entries: Any, cluster_bits: int) -> tuple[Any, Any]:
    """Host byte offset and byte length of compressed L2 descriptors (§1.6):
    bits 0..61-(cluster_bits-8) are the offset, the bits above it up to 61
    hold ``nb - 1`` sectors, ``csize = nb * 512 - (offset & 511)``.

    ``entries`` is a numpy uint64 array; the masks take its own dtype so this
    module needs no numpy.
    """
    u64 = entries.dtype.type
    shift = 62 - (cluster_bits - 8)
    offset = entries & u64((1 << shift) - 1)
    sectors = ((entries >> u64(shift)) & u64((1 << (cluster_bits - 8)) - 1)) + u64(1)
    return offset, sectors * u64(SECTOR_SIZE) - (offset & u64(SECTOR_SIZE - 1))
