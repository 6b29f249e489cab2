"""Small helpers for rule plugins: turning vectorised hits into problems.

Rules judge whole tables with numpy predicates and create problems only for
the hits; these helpers keep that cheap even when a corrupt table has
millions of hits, by spelling out only as many as the rule may still report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from qcow2lint import spec, text
from qcow2lint.findings import Omitted, Problem
from qcow2lint.records import L2Tables


class _Context:  # the part of RuleContext these helpers need
    remaining: int


def each_hit(ctx: _Context, hits: np.ndarray, make: Callable[[int], Problem]) -> Iterator[Problem | Omitted]:
    """``make(i)`` for the hits the rule may still report, then the count of the rest."""
    shown = int(min(len(hits), ctx.remaining))
    for hit in hits[:shown].tolist():
        yield make(hit)
    if len(hits) > shown:
        yield Omitted(len(hits) - shown)


def entry_hits(
    ctx: _Context, table: object, mask: np.ndarray, message: Callable[[int], str], entry_size: int = 8
) -> Iterator[Problem | Omitted]:
    """Problems for the entries of a 1-D table (L1, reftable, bitmap table)
    where ``mask`` is true; ``message`` gets the entry's value."""
    entries = table.entries  # type: ignore[attr-defined]
    base, path = table.file_offset, table.path  # type: ignore[attr-defined]
    yield from each_hit(
        ctx, np.flatnonzero(mask),
        lambda i: Problem(base + i * entry_size, f"{path}[{i}]", message(int(entries[i]))),
    )  # fmt: skip


def l2_hits(
    ctx: _Context, batch: L2Tables, flat: np.ndarray, message: Callable[[int, int], str]
) -> Iterator[Problem | Omitted]:
    """Problems for the L2 entries of a batch at the flat indices ``flat``
    (as from ``np.flatnonzero`` over a whole-batch predicate); ``message``
    gets the entry's value and its subcluster bitmap (0 with standard L2)."""
    entries, bitmaps = batch.entries.ravel(), batch.bitmaps.ravel() if batch.bitmaps is not None else None
    yield from l2_hits_at(
        ctx, batch, flat, lambda i: message(int(entries[i]), int(bitmaps[i]) if bitmaps is not None else 0)
    )


def l2_hits_at(
    ctx: _Context, batch: L2Tables, flat: np.ndarray, message: Callable[[int], str]
) -> Iterator[Problem | Omitted]:
    """Like ``l2_hits``, but ``message`` gets the flat index of the entry,
    for rules that precomputed per-entry values."""
    columns = batch.entries.shape[1]

    def make(index: int) -> Problem:
        row, column = divmod(index, columns)
        return Problem(batch.entry_offset(row, column), batch.entry_path(row, column), message(index))

    yield from each_hit(ctx, flat, make)


def u64(value: int) -> np.uint64:
    """A mask as a numpy scalar, for predicates over uint64 tables."""
    return np.uint64(value)


def misaligned(offset: int, cluster_size: int) -> bool:
    """Whether a byte offset is not a multiple of the cluster size."""
    return offset % cluster_size != 0


def unknown_feature_bits(ctx: object, field: str, feature_type: int, known_mask: int) -> Iterator[Problem]:
    """A problem for the bits of a v3 feature field outside ``known_mask``,
    named from the image's own feature name table when it has one."""
    header = ctx.header  # type: ignore[attr-defined]
    value = getattr(header, field)
    unknown = value & ~known_mask
    if header.version < 3 or not unknown:
        return
    table = ctx.image.extension(spec.EXT_FEATURE_TABLE)  # type: ignore[attr-defined]
    names = []
    for bit in spec.set_bits(unknown):
        name = table.payload.name_of(feature_type, bit) if table is not None else None
        names.append(f"bit {bit}" + (f" ('{name}')" if name else ""))
    yield Problem(
        header.field_offset(field), f"header.{field}",
        f"{field} {value:#x} has bits QEMU does not know: {', '.join(names)} (known mask {known_mask:#x})",
    )  # fmt: skip


def header_field_misaligned(ctx: object, field: str, what: str) -> Iterator[Problem]:
    """A problem when a header offset field is not cluster-aligned."""
    header = ctx.header  # type: ignore[attr-defined]
    offset = getattr(header, field)
    if misaligned(offset, header.cluster_size):
        yield Problem(
            header.field_offset(field), f"header.{field}",
            f"{what} offset {offset:#x} is not a multiple of the cluster size {header.cluster_size:#x}",
        )  # fmt: skip


# --- placement and snapshots (catalogue §2.5, §2.13) ---------------------------


def size_to_l1(header: object, size: int) -> int:
    """QEMU's size_to_l1(): L1 entries needed to map ``size`` guest bytes,
    ceil(size / (cluster_size * l2_entries)) (catalogue §1.3)."""
    span = header.cluster_size * header.l2_entries  # type: ignore[attr-defined]
    return -(-size // span) if span else 0


def ends_out_of_file(offset: int, length: int, ctx: object) -> bool:
    """Whether a non-empty region ends one cluster or more past the end of
    the file: the test of QEMU's check (inc_refcounts, catalogue §2.15);
    shorter overruns are tolerated and read as zeros."""
    return length > 0 and offset + length - ctx.file_size >= ctx.cluster_size  # type: ignore[attr-defined]


def snapshot_disk_size(entry: object, header: object) -> int:
    """A snapshot's virtual disk size: extra data bytes 8..15, else what
    QEMU assumes without them, the current size in whole sectors."""
    disk_size = entry.disk_size  # type: ignore[attr-defined]
    return disk_size if disk_size is not None else header.size // 512 * 512  # type: ignore[attr-defined]


def snapshot_is_blank(entry: object) -> bool:
    """An entry no QEMU snapshot can have: no L1 table (offset 0, l1_size 0)
    and no id (QEMU always generates one).  It is what an entry past the real
    end of the table looks like when nb_snapshots claims too many: the zero
    fill of the table's last cluster."""
    return entry.l1_table_offset == 0 and entry.l1_size == 0 and entry.id_str_size == 0  # type: ignore[attr-defined]


#: The last table blank_snapshot_tail() measured, and the answer: the
#: per-entry rules ask once per entry, and a hostile table has 65536.
_blank_tail: list[object] = [None, 0]


def blank_snapshot_tail(table: object) -> int:
    """Index of the first entry of the trailing run of blank entries
    (:func:`snapshot_is_blank`) of a snapshot table; len(entries) when the
    last entry is a real one."""
    if _blank_tail[0] is not table:
        entries = table.entries  # type: ignore[attr-defined]
        start = len(entries)
        while start > 0 and snapshot_is_blank(entries[start - 1]):
            start -= 1
        _blank_tail[:] = [table, start]
    return _blank_tail[1]  # type: ignore[return-value]


def shown(raw: bytes, limit: int = 64) -> str:
    """A name or id from the image for a message: quoted, escaped, and cut
    short (:func:`qcow2lint.text.shown`)."""
    return text.shown(raw, limit)


# --- bitmaps (catalogue §1.9, §2.14) ------------------------------------------

#: Byte offset and width of each bitmaps extension field inside its data.
BITMAPS_EXT_FIELDS = {
    "nb_bitmaps": (0, 4), "reserved32": (4, 4),
    "bitmap_directory_size": (8, 8), "bitmap_directory_offset": (16, 8),
}  # fmt: skip
#: Byte offset of each fixed field of a bitmap directory entry.
BITMAP_ENTRY_FIELDS = {
    "bitmap_table_offset": 0, "bitmap_table_size": 8, "flags": 12, "type": 16,
    "granularity_bits": 17, "name_size": 18, "extra_data_size": 20,
}  # fmt: skip


def bitmaps_ext_field(ext: object, field: str) -> int | None:
    """A field of a bitmaps extension, or None when ``ext`` is another
    extension or its data is too short to hold the field (the payload is
    zero-filled there; bitmaps-ext-bad-length reports the length)."""
    start, width = BITMAPS_EXT_FIELDS[field]
    if ext.magic != spec.EXT_BITMAPS or len(ext.data) < start + width:  # type: ignore[attr-defined]
        return None
    return getattr(ext.payload, field)  # type: ignore[attr-defined]


def bitmaps_ext_problem(ext: object, field: str, message: str) -> Problem:
    """A problem pointing at a field of a bitmaps extension."""
    offset = ext.data_offset + BITMAPS_EXT_FIELDS[field][0]  # type: ignore[attr-defined]
    return Problem(offset, f"{ext.path}.{field}", message)  # type: ignore[attr-defined]


def bitmap_entry_problem(entry: object, field: str, message: str) -> Problem:
    """A problem pointing at a fixed field of a bitmap directory entry."""
    offset = entry.file_offset + BITMAP_ENTRY_FIELDS[field]  # type: ignore[attr-defined]
    return Problem(offset, f"{entry.path}.{field}", message)  # type: ignore[attr-defined]


def bitmap_of(ctx: object, table: object) -> object:
    """The bitmap directory entry that owns a bitmap table.

    Entry rules judge only entries with ``inside_directory``: the reader
    walks on past bitmap_directory_size while fewer than nb_bitmaps entries
    were found, and whatever lies there is what follows the directory in the
    file, not an entry QEMU would read (bitmap-count-mismatch and
    bitmap-dir-size-mismatch report that).
    """
    return ctx.image.bitmap_directory[table.bitmap_index]  # type: ignore[attr-defined]


def bitmap_disk_length(header: object) -> int:
    """The disk length QEMU gives a bitmap: the virtual size rounded down to
    512-byte sectors (catalogue §1.1, §1.9)."""
    return header.size // 512 * 512  # type: ignore[attr-defined]


def bitmap_table_entries_needed(header: object, entry: object) -> int | None:
    """The bitmap_table_size QEMU expects (``load_bitmap_data``, catalogue
    §1.9): ceil(len / (granularity * cluster_size * 8)); None when
    granularity_bits is 64 or more (undefined even by the spec)."""
    bits = entry.granularity_bits  # type: ignore[attr-defined]
    if bits >= 64:
        return None
    per_entry = (1 << bits) * header.cluster_size * 8  # type: ignore[attr-defined]
    return -(-bitmap_disk_length(header) // per_entry)


def option_choice(ctx: object, name: str, choices: tuple[str, ...]) -> str:
    """A string option that must be one of ``choices`` (ValueError otherwise)."""
    value = ctx.options[name]  # type: ignore[attr-defined]
    if value not in choices:
        raise ValueError(f"option {name!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


# --- header and extension area (catalogue §1.2, §2.1 - §2.3) -------------------


def cluster_bits_supported(header: object) -> bool:
    """Whether cluster_bits is in QEMU's range 9..21.  Outside it, limits
    relative to the cluster size mean nothing (QEMU refuses the header
    first; header-cluster-bits-range reports it)."""
    return spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS  # type: ignore[attr-defined]


def extension_label(magic: int) -> str:
    """How messages name an extension type: ``Backing format extension``,
    ``unknown extension 0x12345678``."""
    name = spec.EXT_NAMES.get(magic)
    return f"{name} extension" if name else f"unknown extension {magic:#010x}"


def extension_area_limit(header: object) -> str:
    """What ends the extension area (catalogue §1.2), for messages."""
    offset, cluster_size = header.backing_file_offset, header.cluster_size  # type: ignore[attr-defined]
    return "backing_file_offset" if offset and offset <= cluster_size else "the end of cluster 0"


def extensions_end(image: object) -> int:
    """First byte after the header extensions as they lie in the file: after
    the end marker when there is one, else after the last extension's
    padded data, else the start of the area.  Unlike
    ``ExtensionArea.used_end`` this is not cut at the end of the area, so it
    shows whether the extensions run into what follows (the backing file
    name)."""
    area = image.extension_area  # type: ignore[attr-defined]
    if area.end_marker is not None:
        return area.end_marker + 8
    extensions = image.extensions  # type: ignore[attr-defined]
    if extensions:
        return extensions[-1].data_offset + spec.round_up(extensions[-1].length, 8)
    return area.start


def stored_refcount(ctx: object, offset: int) -> int:
    """The stored refcount of the cluster at byte ``offset`` (for messages)."""
    stored = ctx.stored_refcounts  # type: ignore[attr-defined]
    cluster = np.array([offset >> ctx.header.cluster_bits], np.uint64)  # type: ignore[attr-defined]
    return int(stored.of(cluster)[0][0])


def refcount_entry(ctx: object, cluster: int) -> tuple[int, str]:
    """Byte offset and structure path of the stored refcount of ``cluster``:
    ``refblock@0x20000[5]``, or the refcount table entry that should name
    its block (catalogue §1.7)."""
    header = ctx.header  # type: ignore[attr-defined]
    reftable = ctx.image.refcount_table  # type: ignore[attr-defined]
    block_bits = header.cluster_bits + 3 - header.refcount_order
    index, within = cluster >> block_bits, cluster & ((1 << block_bits) - 1)
    block = int(reftable.entries[index]) & spec.REFT_OFFSET_MASK if index < len(reftable.entries) else 0
    if block == 0:
        return reftable.file_offset + 8 * index, f"reftable[{index}]"
    return block + (within << header.refcount_order) // 8, f"refblock@{block:#x}[{within}]"


def refcount_hits(ctx: object, clusters: np.ndarray, message: Callable[[int], str]) -> Iterator[Problem | Omitted]:
    """Problems located at the stored refcount of each cluster index."""

    def make(cluster: int) -> Problem:
        offset, path = refcount_entry(ctx, cluster)
        return Problem(offset, path, message(cluster))

    yield from each_hit(ctx, clusters, make)  # type: ignore[arg-type]


def mismatch_hits(
    ctx: object, refcounts: object, select: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Iterator[Problem | Omitted]:
    """Problems for the clusters whose stored and rebuilt refcounts differ
    in the way ``select(stored, computed)`` picks."""
    clusters, stored, computed = refcounts.mismatches()  # type: ignore[attr-defined]
    hits = select(stored, computed)
    values = dict(zip(clusters[hits].tolist(), zip(stored[hits].tolist(), computed[hits].tolist())))
    yield from refcount_hits(
        ctx, clusters[hits],
        lambda c: f"cluster {c} (offset {c * ctx.cluster_size:#x}) has refcount {values[c][0]} "  # type: ignore[attr-defined]
        f"but {values[c][1]} references",
    )


# --- external references (the untrusted preset) --------------------------------


def qemu_name(raw: bytes) -> bytes:
    """A file name from the image as QEMU uses it: a C string, so it ends at
    the first NUL byte."""
    return raw.split(b"\0", 1)[0]


def protocol_prefix(name: bytes) -> bytes | None:
    """The protocol a file name selects, the way QEMU's path_has_protocol()
    decides it on POSIX hosts: a ':' before any '/' makes everything before
    the colon a protocol (``json``, ``nbd``, ``file``, ``http``, ... or an
    unknown one QEMU refuses); None for a plain path."""
    for byte in name:
        if byte == 0x2F:  # '/'
            return None
        if byte == 0x3A:  # ':'
            return name[: name.index(b":")]
    return None


def name_hazards(name: bytes) -> list[str]:
    """What makes a backing or data file name from an untrusted image reach
    outside the image's directory, judged on the string alone (nothing is
    opened, stat'ed or resolved)."""
    protocol = protocol_prefix(name)
    if protocol is not None:
        if protocol == b"json":
            return ["uses the json: pseudo-protocol (QEMU reads the rest as block driver options)"]
        return [f"uses the protocol prefix {shown(protocol + b':')} (QEMU opens it with that protocol driver)"]
    hazards = []
    parts = [part for part in name.split(b"/") if part not in (b"", b".")]
    if name.startswith(b"/"):
        normal: list[bytes] = []
        for part in parts:
            if part == b"..":
                if normal:
                    normal.pop()
            else:
                normal.append(part)
        if len(normal) > 1 and normal[0] == b"dev":
            hazards.append("names a device under /dev")
        else:
            hazards.append("is an absolute path")
    if b".." in parts:
        hazards.append("has a '..' component (it can climb out of the image's directory)")
    return hazards
