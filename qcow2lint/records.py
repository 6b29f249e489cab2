"""Frozen attrs records for every qcow2 structure the reader produces.

Records keep the raw on-disk values in spec order, the byte offset they were
read from, and the bytes the spec says must be zero, so that rules can judge
them.  Nothing here validates spec rules: a linter must be able to hold a
broken value in order to flag it.  Big tables are read-only numpy arrays.
Records are plain data: no I/O, no open file (the reader's ImageFile holds
that), no import of the reader.  What the analyses conclude from them is in
:mod:`qcow2lint.results`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import attrs
import numpy as np

from qcow2lint import spec
from qcow2lint.memo import Memo, memo_field
from qcow2lint.recordtype import Record

T = TypeVar("T")


def _array(value: np.ndarray) -> np.ndarray:
    """Freeze a numpy array so that no rule can change a table."""
    value.flags.writeable = False
    return value


def _table() -> Any:
    """An attrs field holding a numpy table (no equality, frozen on set)."""
    return attrs.field(converter=_array, eq=False, repr=lambda a: f"<{a.shape} {a.dtype}>")


def _label(raw: bytes, limit: int = 64) -> str:
    """A printable form of a name or id from the image, for paths and
    messages: non-ASCII bytes and control characters escaped, at most
    ``limit`` bytes shown (:func:`qcow2lint.text.label`)."""
    from qcow2lint.text import label

    return label(raw, limit)


@attrs.frozen(repr=False)
class ReadProblem(Record):
    """A structure the reader could not read whole.

    ``length`` bytes were expected at ``offset``; the structure ends
    ``past_eof`` bytes past the end of the file (0 when the reader stopped
    for another reason, such as a hostile count).
    """

    structure: str
    offset: int
    length: int
    past_eof: int
    message: str

    @property
    def file_offset(self) -> int:
        """Where the structure starts."""
        return self.offset

    @property
    def path(self) -> str:
        """The structure's path."""
        return self.structure


# --- Header (spec, "Header") -------------------------------------------------

_HEADER = struct.Struct(spec.HEADER_FORMAT)


@attrs.frozen(repr=False)
class Header(Record):
    """The image header.

    Like QEMU's qcow2.py, the 104-byte v3 layout is always decoded; for a
    version 2 image the five v3 fields then take their v2 meaning
    (no features, refcount_order 4, header_length 72).
    """

    magic: int
    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshot_offset: int
    incompatible_features: int
    compatible_features: int
    autoclear_features: int
    refcount_order: int
    header_length: int
    #: Byte 104, present only in a v3 header longer than 104 bytes.
    compression_type: int | None
    #: Bytes 105..min(header_length, 112): must be zero.
    padding: bytes
    #: Bytes 112..header_length: fields of later versions (0 = absent).
    unknown_fields: bytes
    #: How many header bytes the file holds (fewer than 104 when truncated).
    bytes_available: int
    #: Bytes 72..103 decoded as the five v3 fields, whatever the version
    #: (in a v2 image these bytes belong to the extension area).
    v3_fields_on_disk: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    file_offset: ClassVar[int] = 0

    @classmethod
    def from_bytes(cls, head: bytes) -> Header:
        """Decode a header from the first bytes of the file (may be short)."""
        fields = dict(zip(spec.HEADER_FIELDS, _HEADER.unpack(head[: _HEADER.size].ljust(_HEADER.size, b"\0"))))
        on_disk = tuple(fields[name] for name in spec.HEADER_FIELDS[-5:])
        if fields["version"] == 2:
            fields.update(
                incompatible_features=0,
                compatible_features=0,
                autoclear_features=0,
                refcount_order=4,
                header_length=spec.V2_HEADER_LENGTH,
            )
        compression_type = None
        padding = unknown = b""
        length = fields["header_length"]
        if fields["version"] >= 3 and length > spec.V3_HEADER_LENGTH:
            extra = head[spec.COMPRESSION_TYPE_OFFSET : length]
            compression_type = extra[0] if extra else None
            padding = extra[1 : spec.HEADER_PADDING_END - spec.COMPRESSION_TYPE_OFFSET]
            unknown = extra[spec.HEADER_PADDING_END - spec.COMPRESSION_TYPE_OFFSET :]
        return cls(
            **fields,
            compression_type=compression_type,
            padding=padding,
            unknown_fields=unknown,
            bytes_available=min(len(head), max(length, _HEADER.size)),
            v3_fields_on_disk=on_disk,
        )

    @property
    def cluster_size(self) -> int:
        """Bytes per cluster (0 when cluster_bits is absurd)."""
        return 1 << self.cluster_bits if self.cluster_bits < 64 else 0

    @property
    def extended_l2(self) -> bool:
        """Whether L2 entries are 128-bit extended entries (incompat bit 4)."""
        return bool(self.incompatible_features & spec.INCOMPAT_EXTL2)

    @property
    def has_data_file(self) -> bool:
        """Whether guest data lives in an external data file (incompat bit 2)."""
        return bool(self.incompatible_features & spec.INCOMPAT_DATA_FILE)

    @property
    def l2_entry_size(self) -> int:
        """Bytes per L2 entry: 8, or 16 with extended L2."""
        return spec.EXTL2_ENTRY_SIZE if self.extended_l2 else spec.L2_ENTRY_SIZE

    @property
    def l2_entries(self) -> int:
        """Entries per L2 table."""
        return self.cluster_size // self.l2_entry_size

    @property
    def refcount_bits(self) -> int:
        """Width of one refcount in bits."""
        return 1 << self.refcount_order if self.refcount_order < 64 else 0

    @staticmethod
    def field_offset(name: str) -> int:
        """Byte offset of a header field."""
        return spec.HEADER_FIELD_OFFSETS[name]


# --- Header extensions (§1.2) ------------------------------------------------


@attrs.frozen(repr=False)
class BackingFormat(Record):
    """Payload of the backing file format extension."""

    name: bytes


@attrs.frozen(repr=False)
class FeatureNameEntry(Record):
    """One 48-byte entry of the feature name table."""

    file_offset: int
    type: int
    bit: int
    name: bytes

    @property
    def label(self) -> str:
        """The feature's name without its zero padding."""
        return _label(self.name.rstrip(b"\0"))


@attrs.frozen(repr=False)
class FeatureTable(Record):
    """Payload of the feature name table extension."""

    entries: tuple[FeatureNameEntry, ...]

    def name_of(self, feature_type: int, bit: int) -> str | None:
        """The image's own name for a feature bit, if the table has one."""
        for entry in self.entries:
            if entry.type == feature_type and entry.bit == bit:
                return entry.label
        return None


@attrs.frozen(repr=False)
class BitmapsExtension(Record):
    """Payload of the bitmaps extension (its first 24 bytes)."""

    file_offset: int
    nb_bitmaps: int
    reserved32: int
    bitmap_directory_size: int
    bitmap_directory_offset: int

    _LAYOUT: ClassVar[struct.Struct] = struct.Struct(spec.BITMAPS_EXT_FORMAT)

    @classmethod
    def from_bytes(cls, data: bytes, file_offset: int) -> BitmapsExtension:
        """Decode the 24-byte body (zero-filled when shorter)."""
        size = spec.BITMAPS_EXT_SIZE
        return cls(file_offset, *cls._LAYOUT.unpack(data[:size].ljust(size, b"\0")))


@attrs.frozen(repr=False)
class CryptoHeaderPointer(Record):
    """Payload of the full disk encryption header pointer extension."""

    offset: int
    length: int


@attrs.frozen(repr=False)
class DataFileName(Record):
    """Payload of the external data file name extension."""

    name: bytes


Payload = BackingFormat | FeatureTable | BitmapsExtension | CryptoHeaderPointer | DataFileName


@attrs.frozen(repr=False)
class HeaderExtension(Record):
    """One header extension: framing, raw data and a typed payload."""

    index: int
    file_offset: int
    magic: int
    length: int
    #: The first ``length`` data bytes (fewer if the file ends first).
    data: bytes
    #: The bytes from ``length`` up to the next multiple of 8.
    padding: bytes
    payload: Payload | None
    #: End of the extension area this extension was read from.
    area_end: int

    @property
    def name(self) -> str:
        """The extension's name as qcow2.py prints it."""
        return spec.EXT_NAMES.get(self.magic, "<unknown>")

    @property
    def path(self) -> str:
        """Structure path, e.g. ``extensions[1](bitmaps)``."""
        return f"extensions[{self.index}]({spec.EXT_SLUGS.get(self.magic, f'{self.magic:#x}')})"

    def field_offset(self, name: str) -> int:
        """Byte offset of a framing field (``magic``, ``length``)."""
        return self.file_offset + spec.EXT_FRAMING_FIELDS[name]

    @property
    def data_offset(self) -> int:
        """Byte offset of the extension's data."""
        return self.file_offset + spec.EXT_FRAMING_SIZE

    @property
    def overruns_area(self) -> bool:
        """Whether the data runs past the end of the extension area."""
        return self.data_offset + self.length > self.area_end


@attrs.frozen(repr=False)
class ExtensionArea(Record):
    """Where the header extensions were looked for, and how the walk ended."""

    #: First byte of the area (header_length; 72 for v2).
    start: int
    #: backing_file_offset when set, else the end of cluster 0.
    end: int
    #: Offset of the end-of-extensions marker, None when there is none.
    end_marker: int | None
    #: Why the walk stopped: "end-marker", "area-end", "overrun" or "eof".
    stop: str
    #: The length field of the end-of-extensions marker (0 when there is none).
    end_marker_length: int = 0

    @property
    def file_offset(self) -> int:
        """Where the area starts."""
        return self.start


# --- Encryption (§1.10) -------------------------------------------------------

_LUKS = struct.Struct(spec.LUKS_HEADER_FORMAT)
_LUKS_SLOT = struct.Struct(spec.LUKS_KEY_SLOT_FORMAT)


@attrs.frozen(repr=False)
class LuksKeySlot(Record):
    """One of the eight LUKS1 key slots."""

    index: int
    file_offset: int
    active: int
    iterations: int
    salt: bytes
    key_material_offset: int
    stripes: int

    def field_offset(self, name: str) -> int:
        """Byte offset of a key slot field."""
        return self.file_offset + spec.LUKS_KEY_SLOT_FIELDS[name]


@attrs.frozen(repr=False)
class LuksHeader(Record):
    """The LUKS1 header at the start of the encryption area (592 bytes)."""

    file_offset: int
    magic: bytes
    version: int
    cipher_name: bytes
    cipher_mode: bytes
    hash_spec: bytes
    payload_offset: int
    key_bytes: int
    mk_digest: bytes
    mk_digest_salt: bytes
    mk_digest_iterations: int
    uuid: bytes
    key_slots: tuple[LuksKeySlot, ...]

    def field_offset(self, name: str) -> int:
        """Byte offset of a LUKS header field."""
        return self.file_offset + spec.LUKS_HEADER_FIELDS[name]

    @classmethod
    def from_bytes(cls, raw: bytes, file_offset: int) -> LuksHeader:
        """Decode 592 bytes (zero-filled when shorter)."""
        raw = raw[: spec.LUKS_HEADER_SIZE].ljust(spec.LUKS_HEADER_SIZE, b"\0")
        fields = _LUKS.unpack(raw[: _LUKS.size])
        starts = [_LUKS.size + i * spec.LUKS_KEY_SLOT_SIZE for i in range(spec.LUKS_KEY_SLOTS)]
        slots = tuple(
            LuksKeySlot(i, file_offset + start, *_LUKS_SLOT.unpack_from(raw, start)) for i, start in enumerate(starts)
        )
        return cls(file_offset, *fields, key_slots=slots)  # type: ignore[misc]  # struct's tuple has no length


@attrs.frozen(repr=False)
class EncryptionArea(Record):
    """The area the full disk encryption header pointer names."""

    file_offset: int
    length: int
    #: The LUKS header at file_offset (None when the area is outside the file).
    luks: LuksHeader | None
    #: The bytes from file_offset + length to the next cluster boundary,
    #: which must be zero.
    tail: bytes
    path: ClassVar[str] = "encryption"


# --- Bitmaps (§1.9) ----------------------------------------------------------

_BITMAP_ENTRY = struct.Struct(spec.BITMAP_DIR_ENTRY_FORMAT)


@attrs.frozen(repr=False)
class BitmapDirectoryEntry(Record):
    """One bitmap directory entry, with its raw name, extra data and padding."""

    index: int
    file_offset: int
    bitmap_table_offset: int
    bitmap_table_size: int
    flags: int
    type: int
    granularity_bits: int
    name_size: int
    extra_data_size: int
    extra_data: bytes
    name_bytes: bytes
    padding: bytes
    #: Whether the whole entry lies inside bitmap_directory_size.
    inside_directory: bool
    #: The bitmap's name, non-ASCII bytes escaped, and the entry's structure
    #: path, e.g. ``bitmaps[0](daily)``: made with the entry, as the reader
    #: and several rules ask for them for each of up to 65,535 entries.
    name: str = attrs.field(
        init=False, eq=False, repr=False, default=attrs.Factory(lambda self: _label(self.name_bytes), takes_self=True)
    )
    path: str = attrs.field(
        init=False,
        eq=False,
        repr=False,
        default=attrs.Factory(lambda self: f"bitmaps[{self.index}]({self.name})", takes_self=True),
    )

    @classmethod
    def decode(
        cls, index: int, file_offset: int, fixed: bytes, extra: bytes, tail: bytes, inside: bool = True
    ) -> BitmapDirectoryEntry:
        """Decode an entry from its 24 fixed bytes, extra data and the
        name-plus-padding bytes that follow the extra data."""
        fields = _BITMAP_ENTRY.unpack(fixed[: _BITMAP_ENTRY.size].ljust(_BITMAP_ENTRY.size, b"\0"))
        name_size = fields[5]
        return cls(  # type: ignore[misc]  # struct's tuple has no length
            index,
            file_offset,
            *fields,
            extra_data=extra,
            name_bytes=tail[:name_size],
            padding=tail[name_size:],
            inside_directory=inside,
        )

    @property
    def size(self) -> int:
        """Bytes the entry occupies in the directory (padded to 8)."""
        return spec.bitmap_entry_size(self.extra_data_size, self.name_size)

    def field_offset(self, name: str) -> int:
        """Byte offset of a fixed field of the entry."""
        return self.file_offset + spec.BITMAP_ENTRY_FIELDS[name]

    @property
    def name_offset(self) -> int:
        """Byte offset of the entry's name (after the extra data)."""
        return self.file_offset + spec.BITMAP_DIR_ENTRY_SIZE + self.extra_data_size

    @property
    def padding_offset(self) -> int:
        """Byte offset of the entry's padding."""
        return self.name_offset + self.name_size


BITMAP_ENTRY_KINDS = ("all-zeroes", "all-ones", "serialized", "invalid")


def bitmap_entry_kinds(entries: np.ndarray) -> np.ndarray:
    """Index into BITMAP_ENTRY_KINDS for every bitmap table entry (§1.9):
    the offset field picks serialized/invalid over all-zeroes/all-ones, and
    bit 0 picks all-ones/invalid."""
    has_offset = (entries & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)) != 0
    all_ones = (entries & np.uint64(spec.BME_TABLE_ENTRY_FLAG_ALL_ONES)) != 0
    return has_offset.astype(np.uint8) * 2 + all_ones


@attrs.frozen(repr=False)
class BitmapTable(Record):
    """The bitmap table of one bitmap (entries that lie inside the file)."""

    bitmap_index: int
    bitmap_name: str
    file_offset: int
    expected_entries: int
    entries: np.ndarray = _table()
    #: The data cluster that holds the bitmap's last bit, when that entry is
    #: serialized (its bits past the end of the bitmap must be zero), with
    #: its table index and the number of bits the bitmap has.
    tail_cluster: bytes | None = None
    tail_index: int | None = None
    bit_count: int = 0

    @property
    def path(self) -> str:
        """Structure path, e.g. ``bitmaps[0](daily).table``."""
        return f"bitmaps[{self.bitmap_index}]({self.bitmap_name}).table"


# --- L1 / L2 tables (§1.3 - §1.5) --------------------------------------------


@attrs.frozen(repr=False)
class L1Table(Record):
    """An L1 table: the active one, or a snapshot's."""

    file_offset: int
    expected_entries: int
    entries: np.ndarray = _table()
    #: Index of the snapshot that owns this table, None for the active L1.
    snapshot: int | None = None
    #: Structure path of the table, ``l1`` or ``snapshots[0](id).l1``.
    path: str = "l1"

    @property
    def active(self) -> bool:
        """Whether this is the active L1 table."""
        return self.snapshot is None


@attrs.frozen(repr=False)
class L2Tables(Record):
    """A batch of L2 tables, read together for speed.

    ``entries`` has one row per table, as native uint64.  With extended L2
    the second u64 of every entry (the subcluster bitmap) is in
    ``bitmaps``.  Rules judge a batch with whole-table numpy predicates;
    ``host_offsets`` is computed once per batch and shared by every rule.
    """

    #: Host offset of each table (the L1 entry's offset field).
    offsets: np.ndarray = _table()
    entries: np.ndarray = _table()
    bitmaps: np.ndarray | None = attrs.field(default=None, eq=False)
    #: Per table: how many L1 entries reference it (in the L1 tables QEMU's
    #: check walks), how many of those are in the active L1, and the first
    #: active L1 index (-1 when only snapshots reference it).
    refs: np.ndarray | None = attrs.field(default=None, eq=False)
    active_refs: np.ndarray | None = attrs.field(default=None, eq=False)
    first_l1: np.ndarray | None = attrs.field(default=None, eq=False)
    #: Whether guest data lives in an external data file (incompat bit 2).
    data_file: bool = False
    #: What the predicates (:mod:`qcow2lint.predicates`) computed for this
    #: batch: shared by the rules and the passes, dropped with the batch.
    memo: Memo = memo_field()

    @property
    def extended(self) -> bool:
        """Whether the entries are extended (128-bit) L2 entries."""
        return self.bitmaps is not None

    @property
    def entry_size(self) -> int:
        """Bytes per entry on disk."""
        return spec.EXTL2_ENTRY_SIZE if self.extended else spec.L2_ENTRY_SIZE

    @property
    def any_bits(self) -> int:
        """Every bit that is set in some entry of the batch (one OR over it)."""
        return self.memo.once(
            "any_bits", lambda: int(np.bitwise_or.reduce(self.entries, axis=None)) if self.entries.size else 0
        )

    def may_have(self, mask: int) -> bool:
        """Whether some entry may have a bit of ``mask`` set: False proves that
        none has, so a predicate that needs such a bit has nothing to find
        (a clean batch is judged by this summary, not by a pass over it)."""
        return bool(self.any_bits & mask)

    @property
    def max_host_offset(self) -> int:
        """The highest host offset field of the batch (0 for an empty one)."""
        return self.memo.once("max_host_offset", lambda: int(self.host_offsets.max()) if self.entries.size else 0)

    @property
    def host_offsets(self) -> np.ndarray:
        """The host offset field (bits 9-55) of every entry."""
        return self.memo.once("host_offsets", lambda: _array(self.entries & np.uint64(spec.L2E_OFFSET_MASK)))

    def cluster_types(self, flat: np.ndarray) -> np.ndarray:
        """QEMU's cluster type (spec.CLUSTER_*) of the entries at the flat
        indices ``flat`` (spec, "Cluster mapping").  Rules first find candidates
        with one cheap mask, then classify only those."""
        entries = self.entries.ravel()[flat]
        has_offset = (entries & np.uint64(spec.L2E_OFFSET_MASK)) != 0
        types = np.where(has_offset, spec.CLUSTER_NORMAL, spec.CLUSTER_UNALLOCATED).astype(np.uint8)
        if self.data_file:  # offset 0 with COPIED is host offset 0 in the data file
            types[(entries & np.uint64(spec.OFLAG_COPIED)) != 0] = spec.CLUSTER_NORMAL
        if not self.extended:  # the zero flag means nothing with extended L2
            zero = (entries & np.uint64(spec.OFLAG_ZERO)) != 0
            types[zero] = np.where(has_offset[zero], spec.CLUSTER_ZERO_ALLOC, spec.CLUSTER_ZERO_PLAIN)
        types[(entries & np.uint64(spec.OFLAG_COMPRESSED)) != 0] = spec.CLUSTER_COMPRESSED
        return types

    def entry_offset(self, row: int, column: int) -> int:
        """Byte offset of entry ``column`` of table ``row``."""
        return int(self.offsets[row]) + column * self.entry_size

    def entry_path(self, row: int, column: int) -> str:
        """Structure path, e.g. ``l2@0x50000[3]``."""
        return f"l2@{int(self.offsets[row]):#x}[{column}]"


@attrs.frozen(repr=False)
class CompressedCluster(Record):
    """One distinct compressed payload of an L2 batch (read only with
    ``--deep``), and every entry of the batch that names it.

    The reader makes one record per distinct (host_offset, length) of a
    batch, not one per entry: ``indices`` holds the entries that name it, so
    a rule judges the payload once and reports it for each entry (within its
    findings cap, counting the rest as omitted).
    """

    #: Where the first L2 entry that names it is, and its structure path.
    file_offset: int
    path: str
    host_offset: int
    length: int
    #: The bytes of [host_offset, host_offset + length) inside the file.
    data: bytes
    compression_type: int
    cluster_size: int
    #: The image's memo (:attr:`qcow2lint.reader.ImageFile.memo`), shared
    #: by the records of one image: what ``once`` computed.
    memo: Memo = attrs.field(factory=Memo, eq=False, repr=False)
    #: The batch the entries are in, and the flat indices (row * entries per
    #: table + column) of every entry of it naming this payload, in entry
    #: order.  Without a batch the record stands for its first entry only.
    batch: L2Tables | None = attrs.field(default=None, eq=False, repr=False)
    indices: np.ndarray | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def references(self) -> int:
        """How many L2 entries of the batch name this payload."""
        return 1 if self.indices is None else len(self.indices)

    def entries(self) -> np.ndarray:
        """The flat indices of the entries naming the payload (for
        :meth:`entry`, :func:`qcow2lint.rulekit.each_hit`)."""
        return np.zeros(1, dtype=np.int64) if self.indices is None else self.indices

    def entry(self, index: int) -> tuple[int, str]:
        """File offset and structure path of the entry at flat ``index``."""
        if self.batch is None:
            return self.file_offset, self.path
        row, column = divmod(int(index), self.batch.entries.shape[1])
        return self.batch.entry_offset(row, column), self.batch.entry_path(row, column)

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` for this payload, computed once per image however
        many L2 entries (of any batch) name the same (host_offset, length):
        a rule that decompresses does it once per distinct payload."""
        return self.memo.once((key, self.host_offset, self.length), compute)


# --- Refcounts (§1.7) --------------------------------------------------------


@attrs.frozen(repr=False)
class RefcountTable(Record):
    """The refcount table (entries that lie inside the file)."""

    file_offset: int
    expected_entries: int
    entries: np.ndarray = _table()
    path: ClassVar[str] = "reftable"


@attrs.frozen(repr=False)
class RefcountBlock(Record):
    """One refcount block: a cluster of ``1 << refcount_order``-bit counts."""

    index: int
    file_offset: int
    refcount_order: int
    data: np.ndarray = _table()

    @property
    def path(self) -> str:
        """Structure path, e.g. ``refblock@0x20000``."""
        return f"refblock@{self.file_offset:#x}"

    def refcounts(self) -> np.ndarray:
        """Every refcount in the block, decoded (spec, "Host cluster management"
        bit order) into native unsigned integers of the refcount's width (a
        byte for widths under 8 bits)."""
        order = self.refcount_order
        if order >= 3:  # big-endian on disk, native in the array, same width
            return self.data.view(f">u{1 << (order - 3)}").astype(f"=u{1 << (order - 3)}")
        width = 1 << order
        shifts = np.arange(0, 8, width, dtype=np.uint8)
        # Sub-byte refcounts are packed LSB first: entry i is in byte
        # i * width / 8 at bit (i * width) % 8.
        return ((self.data[:, None] >> shifts) & ((1 << width) - 1)).ravel()


# --- Snapshots (§1.8) --------------------------------------------------------

_SNAPSHOT = struct.Struct(spec.SNAPSHOT_FORMAT)


@attrs.frozen(repr=False)
class SnapshotEntry(Record):
    """One snapshot table entry."""

    index: int
    file_offset: int
    l1_table_offset: int
    l1_size: int
    id_str_size: int
    name_size: int
    date_sec: int
    date_nsec: int
    vm_clock_nsec: int
    vm_state_size32: int
    extra_data_size: int
    extra_data: bytes
    id_str: bytes
    name: bytes
    padding: bytes

    @classmethod
    def decode(cls, index: int, file_offset: int, fixed: bytes, extra: bytes, tail: bytes) -> SnapshotEntry:
        """Decode an entry from its 40 fixed bytes, extra data and the
        id-name-padding bytes that follow the extra data."""
        fields = _SNAPSHOT.unpack(fixed[: _SNAPSHOT.size].ljust(_SNAPSHOT.size, b"\0"))
        id_size, name_size = fields[2], fields[3]
        return cls(  # type: ignore[misc]  # struct's tuple has no length
            index,
            file_offset,
            *fields,
            extra_data=extra,
            id_str=tail[:id_size],
            name=tail[id_size : id_size + name_size],
            padding=tail[id_size + name_size :],
        )

    @property
    def size(self) -> int:
        """Bytes this entry occupies in the table (padded to 8)."""
        return spec.snapshot_entry_size(self.id_str_size, self.name_size, self.extra_data_size)

    @property
    def used_size(self) -> int:
        """Bytes this entry uses without its padding (up to the end of its name)."""
        return spec.snapshot_entry_used(self.id_str_size, self.name_size, self.extra_data_size)

    def field_offset(self, name: str) -> int:
        """Byte offset of a fixed field, or of an extra data field
        (``vm_state_size_large``, ``disk_size``)."""
        offsets = (
            spec.SNAPSHOT_FIELD_OFFSETS if name in spec.SNAPSHOT_FIELD_OFFSETS else spec.SNAPSHOT_EXTRA_FIELD_OFFSETS
        )
        return self.file_offset + offsets[name]

    @property
    def id_str_offset(self) -> int:
        """Byte offset of the id string (after the extra data)."""
        return self.file_offset + spec.SNAPSHOT_HEADER_SIZE + self.extra_data_size

    def _extra_u64(self, start: int) -> int | None:
        chunk = self.extra_data[start : start + 8]
        return int.from_bytes(chunk, "big") if len(chunk) == 8 else None

    @property
    def vm_state_size(self) -> int:
        """The VM state size: the 64-bit extra field when present."""
        large = self._extra_u64(0)
        return self.vm_state_size32 if large is None else large

    @property
    def disk_size(self) -> int | None:
        """The virtual disk size at snapshot time (extra data bytes 8..15)."""
        return self._extra_u64(8)

    @property
    def path(self) -> str:
        """Structure path, e.g. ``snapshots[0](1)``."""
        return f"snapshots[{self.index}]({_label(self.id_str)})"


@attrs.frozen(repr=False)
class SnapshotTable(Record):
    """The snapshot table: ``nb_snapshots`` entries from ``snapshot_offset``."""

    file_offset: int
    nb_snapshots: int
    entries: tuple[SnapshotEntry, ...]
    #: The entry with which the table, counted as QEMU counts it, grows past
    #: ``spec.MAX_SNAPSHOTS_SIZE`` (64 MiB), and that length.  QEMU then
    #: refuses the image and keeps no entry: ``entries`` is empty.
    too_big: SnapshotEntry | None = None
    too_big_length: int = 0
    #: What rules computed once for the whole table
    #: (:func:`qcow2lint.rulekit.blank_snapshot_tail`).
    memo: Memo = memo_field()
    path: ClassVar[str] = "snapshots"


# --- The image ---------------------------------------------------------------


@attrs.frozen(repr=False)
class Image(Record):
    """Everything the reader found in one image file, but the big tables.

    The L2 tables and refcount blocks can be far larger than the rest of the
    metadata: :class:`qcow2lint.reader.ImageFile` streams them on demand
    while the file is open.  This record is plain data and holds no file.
    """

    path: str
    file_size: int
    header: Header
    #: False when the header is too broken to follow any pointer in it
    #: (bad magic, unknown version, unsupported cluster size, short file).
    readable: bool
    extensions: tuple[HeaderExtension, ...] = ()
    backing_file_name: bytes | None = None
    bitmaps: BitmapsExtension | None = None
    bitmap_directory: tuple[BitmapDirectoryEntry, ...] = ()
    bitmap_tables: tuple[BitmapTable, ...] = ()
    l1: L1Table | None = None
    refcount_table: RefcountTable | None = None
    snapshots: SnapshotTable | None = None
    snapshot_l1_tables: tuple[L1Table, ...] = ()
    extension_area: ExtensionArea | None = None
    encryption: EncryptionArea | None = None
    problems: tuple[ReadProblem, ...] = ()
    #: What rules computed once for the whole image (e.g. one walk over
    #: 262,143 extensions instead of one per extension).
    memo: Memo = memo_field()

    def extension(self, magic: int) -> HeaderExtension | None:
        """The extension QEMU uses for ``magic`` (the last one wins)."""
        found = [ext for ext in self.extensions if ext.magic == magic]
        return found[-1] if found else None

    def l1_tables(self) -> tuple[L1Table, ...]:
        """The active L1 table, then every snapshot's."""
        return ((self.l1,) if self.l1 is not None else ()) + self.snapshot_l1_tables
