"""Small helpers for rule plugins: turning vectorised hits into problems.

Rules judge whole tables with numpy predicates and create problems only for
the hits; these helpers keep that cheap even when a corrupt table has
millions of hits, by spelling out only as many as the rule may still report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import attrs
import numpy as np

from qcow2lint import spec, text
from qcow2lint.context import NotRead, RuleContext
from qcow2lint.findings import Omitted, Problem
from qcow2lint.records import (
    BitmapDirectoryEntry,
    BitmapTable,
    CompressedCluster,
    ExtensionArea,
    FeatureTable,
    Header,
    HeaderExtension,
    Image,
    L1Table,
    L2Tables,
    RefcountTable,
    SnapshotEntry,
    SnapshotTable,
)
from qcow2lint.results import Extent, RefcountCheck, StoredRefcounts, extent_runs

#: A 1-D table of u64 entries with a file offset and a structure path.
EntryTable = L1Table | RefcountTable | BitmapTable


def each_hit(ctx: RuleContext, hits: np.ndarray, make: Callable[[int], Problem]) -> Iterator[Problem | Omitted]:
    """``make(i)`` for the hits the rule may still report, then the count of the rest."""
    shown = int(min(len(hits), ctx.remaining))
    for hit in hits[:shown].tolist():
        yield make(hit)
    if len(hits) > shown:
        yield Omitted(len(hits) - shown)


def entry_hits(
    ctx: RuleContext, table: EntryTable, mask: np.ndarray, message: Callable[[int], str], entry_size: int = 8
) -> Iterator[Problem | Omitted]:
    """Problems for the entries of a 1-D table (L1, reftable, bitmap table)
    where ``mask`` is true; ``message`` gets the entry's value."""
    if mask.any():  # most tables have no hit: no index array, no path
        yield from entry_hits_at(ctx, table, np.flatnonzero(mask), message, entry_size)


def entry_hits_at(
    ctx: RuleContext,
    table: EntryTable,
    flat: np.ndarray,
    message: Callable[[int], str],
    entry_size: int = 8,
    hints: Callable[[int], dict[str, Any]] | None = None,
) -> Iterator[Problem | Omitted]:
    """Like ``entry_hits``, for the entry indices ``flat`` (as a predicate of
    :mod:`qcow2lint.predicates` returns them); ``hints`` gives the root-cause
    fields of a problem (:class:`~qcow2lint.findings.Problem`) from the entry."""
    if not len(flat):
        return
    entries = table.entries
    base, path = table.file_offset, table.path
    yield from each_hit(
        ctx,
        flat,
        lambda i: Problem(
            base + i * entry_size, f"{path}[{i}]", message(int(entries[i])), **(hints(int(entries[i])) if hints else {})
        ),
    )


def unusable_table(offset: int, length: int, reads: str, ctx: RuleContext, count: int) -> dict[str, Any]:
    """Root-cause hints for a table QEMU reads at the unusable ``offset``
    (``length`` bytes of ``reads`` entries): the bytes it reads are covered,
    and the ``count`` entries of the table at the cluster-aligned offset
    below it (where it most likely belongs) are lost."""
    return {
        "covers": (offset, offset + length),
        "reads": reads,
        "lost": (offset - offset % ctx.cluster_size, count, reads),
    }


def out_of_file_table(offset: int, length: int, count: int, reads: str, ctx: RuleContext) -> dict[str, Any]:
    """Root-cause hints for a table of ``count`` ``reads`` entries (``length``
    bytes) that ends past the end of the file.  When it starts past the end,
    its offset is what is wrong: QEMU reads none of its entries, what is
    said of the table follows (the cut file-truncated reports), and the
    table they should be (one that leaks, found by the linking) is lost.
    A table that starts inside the file and runs past its end is cut (or
    too long): no hints."""
    if offset < ctx.file_size:
        return {}
    return {"covers": (offset, offset + length), "lost": (offset, count, reads)}


def l2_hits(
    ctx: RuleContext,
    batch: L2Tables,
    flat: np.ndarray,
    message: Callable[[int, int], str],
    hints: Callable[[int], dict[str, Any]] | None = None,
    root: bool = False,
) -> Iterator[Problem | Omitted]:
    """Problems for the L2 entries of a batch at the flat indices ``flat``
    (as from ``np.flatnonzero`` over a whole-batch predicate); ``message``
    gets the entry's value and its subcluster bitmap (0 with standard L2);
    ``hints`` gives the root-cause fields of a problem from the entry; with
    ``root`` each problem is the root of the other findings of its entry
    (:func:`field_root`)."""
    entries, bitmaps = batch.entries.ravel(), batch.bitmaps.ravel() if batch.bitmaps is not None else None
    yield from l2_hits_at(
        ctx,
        batch,
        flat,
        lambda i: message(int(entries[i]), int(bitmaps[i]) if bitmaps is not None else 0),
        (lambda i: hints(int(entries[i]))) if hints else None,
        root,
    )


def l2_hits_at(
    ctx: RuleContext,
    batch: L2Tables,
    flat: np.ndarray,
    message: Callable[[int], str],
    hints: Callable[[int], dict[str, Any]] | None = None,
    root: bool = False,
) -> Iterator[Problem | Omitted]:
    """Like ``l2_hits``, but ``message`` (and ``hints``) get the flat index
    of the entry, for rules that precomputed per-entry values."""
    columns = batch.entries.shape[1]

    def make(index: int) -> Problem:
        row, column = divmod(index, columns)
        problem = l2_entry_problem(batch, row, column, message(index))
        if hints:
            problem = attrs.evolve(problem, **hints(index))
        return field_root(problem, batch.entry_size) if root else problem

    yield from each_hit(ctx, flat, make)


def l2_entry_problem(batch: L2Tables, row: int, column: int, message: str) -> Problem:
    """A problem located at entry ``column`` of the batch's table ``row``,
    naming that table (``about``) for the root-cause linking."""
    return Problem(
        batch.entry_offset(row, column), batch.entry_path(row, column), message, about=int(batch.offsets[row])
    )


def data_extent_table(extent: Extent) -> int | None:
    """The L2 table whose entry maps a guest data extent of the extent map
    (for ``about``): its label is that entry's structure path,
    ``l2@0x50000[17]``; None for other extents."""
    if extent.kind != "data" or not extent.label.startswith("l2@"):
        return None
    table, bracket, _ = extent.label[3:].partition("[")
    try:
        return int(table, 16) if bracket else None
    except ValueError:
        return None


def compressed_entry_problem(cluster: CompressedCluster, index: int, message: str) -> Problem:
    """A problem located at the L2 entry at flat ``index`` that names a
    compressed payload (:meth:`~qcow2lint.records.CompressedCluster.entries`)."""
    batch = cluster.batch
    if batch is None:  # the record stands for its first entry only
        return Problem(cluster.file_offset, cluster.path, message)
    row, column = divmod(int(index), batch.entries.shape[1])
    return l2_entry_problem(batch, row, column, message)


def field_root(problem: Problem, width: int) -> Problem:
    """``problem``, about the value of a ``width``-byte field at its offset,
    as the root cause of the other findings at that offset: one wrong value
    that breaks several requirements is one defect (docs/root-causes.md)."""
    return attrs.evolve(problem, covers=(problem.offset, problem.offset + width), reads="field")


def u64(value: int) -> np.uint64:
    """A mask as a numpy scalar, for predicates over uint64 tables."""
    return np.uint64(value)


def misaligned(offset: int, cluster_size: int) -> bool:
    """Whether a byte offset is not a multiple of the cluster size."""
    return offset % cluster_size != 0


def unknown_feature_bits(ctx: RuleContext, field: str, feature_type: int, known_mask: int) -> Iterator[Problem]:
    """A problem for the bits of a v3 feature field outside ``known_mask``,
    named from the image's own feature name table when it has one."""
    header = ctx.header
    value = getattr(header, field)
    unknown = value & ~known_mask
    if header.version < 3 or not unknown:
        return
    try:
        table = ctx.image.extension(spec.EXT_FEATURE_TABLE)
    except NotRead:  # the bits are in the header; their names only in a table that was not read
        table = None
    names = []
    for bit in spec.set_bits(unknown):
        name = cast(FeatureTable, table.payload).name_of(feature_type, bit) if table is not None else None
        names.append(f"bit {bit}" + (f" ('{name}')" if name else ""))
    yield Problem(
        header.field_offset(field),
        f"header.{field}",
        f"{field} {value:#x} has bits QEMU does not know: {', '.join(names)} (known mask {known_mask:#x})",
    )


def header_field_misaligned(ctx: RuleContext, field: str, what: str) -> Iterator[Problem]:
    """A problem when a header offset field is not cluster-aligned."""
    header = ctx.header
    offset = getattr(header, field)
    if misaligned(offset, header.cluster_size):
        yield Problem(
            header.field_offset(field),
            f"header.{field}",
            f"{what} offset {offset:#x} is not a multiple of the cluster size {header.cluster_size:#x}",
        )


# --- placement and snapshots (spec, "Header"; spec, "Snapshots") ---------------------------


def size_to_l1(header: Header, size: int) -> int:
    """QEMU's size_to_l1(): L1 entries needed to map ``size`` guest bytes,
    ceil(size / (cluster_size * l2_entries)) (spec, "Cluster mapping")."""
    span = header.cluster_size * header.l2_entries
    return -(-size // span) if span else 0


def ends_out_of_file(offset: int, length: int, ctx: RuleContext) -> bool:
    """Whether a non-empty region ends one cluster or more past the end of
    the file: the test of QEMU's check (inc_refcounts, spec, "Host cluster management");
    shorter overruns are tolerated and read as zeros."""
    return length > 0 and offset + length - ctx.file_size >= ctx.cluster_size


def snapshot_disk_size(entry: SnapshotEntry, header: Header) -> int:
    """A snapshot's virtual disk size: extra data bytes 8..15, else what
    QEMU assumes without them, the current size in whole sectors."""
    disk_size = entry.disk_size
    return disk_size if disk_size is not None else spec.disk_length(header.size)


def snapshot_is_blank(entry: SnapshotEntry) -> bool:
    """An entry no QEMU snapshot can have: no L1 table (offset 0, l1_size 0)
    and no id (QEMU always generates one).  It is what an entry past the real
    end of the table looks like when nb_snapshots claims too many: the zero
    fill of the table's last cluster."""
    return entry.l1_table_offset == 0 and entry.l1_size == 0 and entry.id_str_size == 0


def blank_snapshot_tail(table: SnapshotTable) -> int:
    """Index of the first entry of the trailing run of blank entries
    (:func:`snapshot_is_blank`) of a snapshot table; len(entries) when the
    last entry is a real one.  Measured once per table: the per-entry rules
    ask once per entry, and a hostile table has 65536."""

    def measure() -> int:
        entries = table.entries
        start = len(entries)
        while start > 0 and snapshot_is_blank(entries[start - 1]):
            start -= 1
        return start

    return table.memo.once("blank-tail", measure)


def shown(raw: bytes, limit: int = 64) -> str:
    """A name or id from the image for a message: quoted, escaped, and cut
    short (:func:`qcow2lint.text.shown`)."""
    return text.shown(raw, limit)


# --- bitmaps (spec, "Bitmaps") ------------------------------------------


def bitmaps_ext_field(ext: HeaderExtension, field: str) -> int | None:
    """A field of a bitmaps extension, or None when ``ext`` is another
    extension or its data is too short to hold the field (the payload is
    zero-filled there; bitmaps-ext-bad-length reports the length)."""
    start, width = spec.BITMAPS_EXT_FIELDS[field]
    if ext.magic != spec.EXT_BITMAPS or len(ext.data) < start + width:
        return None
    value: int = getattr(ext.payload, field)
    return value


def bitmaps_ext_problem(ext: HeaderExtension, field: str, message: str) -> Problem:
    """A problem pointing at a field of a bitmaps extension."""
    offset = ext.data_offset + spec.BITMAPS_EXT_FIELDS[field][0]
    return Problem(offset, f"{ext.path}.{field}", message)


def bitmap_entry_problem(entry: BitmapDirectoryEntry, field: str, message: str) -> Problem:
    """A problem pointing at a fixed field of a bitmap directory entry."""
    return Problem(entry.field_offset(field), f"{entry.path}.{field}", message)


def bitmap_of(ctx: RuleContext, table: BitmapTable) -> BitmapDirectoryEntry:
    """The bitmap directory entry that owns a bitmap table.

    Entry rules judge only entries with ``inside_directory``: the reader
    walks on past bitmap_directory_size while fewer than nb_bitmaps entries
    were found, and whatever lies there is what follows the directory in the
    file, not an entry QEMU would read (bitmap-count-mismatch and
    bitmap-dir-size-mismatch report that).
    """
    return ctx.image.bitmap_directory[table.bitmap_index]


def bitmap_disk_length(header: Header) -> int:
    """The disk length QEMU gives a bitmap: the virtual size rounded down to
    512-byte sectors (spec, "Header"; spec, "Bitmaps")."""
    return spec.disk_length(header.size)


def bitmap_table_entries_needed(header: Header, entry: BitmapDirectoryEntry) -> int | None:
    """The bitmap_table_size QEMU expects (``load_bitmap_data``, spec, "Bitmaps"): ceil(len / (granularity * cluster_size * 8)); None when
    granularity_bits is 64 or more (undefined even by the spec)."""
    bits = entry.granularity_bits
    if bits >= 64:
        return None
    per_entry = (1 << bits) * header.cluster_size * 8
    return -(-bitmap_disk_length(header) // per_entry)


def option_choice(ctx: RuleContext, name: str, choices: tuple[str, ...]) -> str:
    """A string option that must be one of ``choices`` (ValueError otherwise)."""
    value = ctx.options[name]
    if value not in choices:
        raise ValueError(f"option {name!r} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return str(value)


# --- header and extension area (spec, "Header extensions"; spec, "Header") -------------------


def cluster_bits_supported(header: Header) -> bool:
    """Whether cluster_bits is in QEMU's range 9..21.  Outside it, limits
    relative to the cluster size mean nothing (QEMU refuses the header
    first; header-cluster-bits-range reports it)."""
    return spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS


def extension_label(magic: int) -> str:
    """How messages name an extension type: ``Backing format extension``,
    ``unknown extension 0x12345678``."""
    name = spec.EXT_NAMES.get(magic)
    return f"{name} extension" if name else f"unknown extension {magic:#010x}"


def extension_area_limit(header: Header) -> str:
    """What ends the extension area (spec, "Header extensions"), for messages."""
    offset, cluster_size = header.backing_file_offset, header.cluster_size
    return "backing_file_offset" if offset and offset <= cluster_size else "the end of cluster 0"


def extensions_end(image: Image) -> int:
    """First byte after the header extensions as they lie in the file: after
    the end marker when there is one, else after the last extension's
    padded data, else the start of the area.  It is not cut at the end of
    the area, so it shows whether the extensions run into what follows (the
    backing file name)."""
    area = cast(ExtensionArea, image.extension_area)  # present whenever the image is readable
    if area.end_marker is not None:
        return area.end_marker + spec.EXT_FRAMING_SIZE
    extensions = image.extensions
    if extensions:
        return extensions[-1].data_offset + spec.round_up(extensions[-1].length, 8)
    return area.start


#: Metadata owned by exactly one structure: its refcount must be 1.  A
#: wrong refcount on one of their clusters that has its one reference is
#: reported by metadata-refcount-not-one alone (one fact, one rule), not
#: also as a refcount mismatch.
OWNED_METADATA = frozenset(
    {"header", "active-l1", "inactive-l1", "reftable", "refblock", "snapshot-table", "bitmap-directory", "bitmap-table"}
)


def owned_spans(refcounts: RefcountCheck, cluster_bits: int) -> list[tuple[Extent, int, int]]:
    """Each owned metadata extent with its first and last compared cluster,
    at most ``spec.MAX_MAPPED_EXTENT`` bytes of it: a longer table is one
    QEMU refuses to load, flagged by its own rule."""
    return [
        (extent, first, last)
        for extent, first, last, copies in owned_runs(refcounts, cluster_bits)
        for _ in range(copies)
    ]


def owned_runs(refcounts: RefcountCheck, cluster_bits: int) -> list[tuple[Extent, int, int, int]]:
    """``owned_spans`` with each run of one extent object taken once (the
    refcount table entries that name one block share its extent, and a
    hostile table names one block 2^18 times): the extent, its first and
    last compared cluster, and how many times it comes in a row."""
    runs = []
    extents, repeats = extent_runs(refcounts.metadata)
    for extent, copies in zip(extents, repeats.tolist(), strict=True):
        if extent.kind in OWNED_METADATA and extent.length > 0:
            first = extent.offset >> cluster_bits
            end = extent.offset + min(extent.length, spec.MAX_MAPPED_EXTENT)
            last = min((end - 1) >> cluster_bits, refcounts.compared - 1)
            if first <= last:
                runs.append((extent, first, last, copies))
    return runs


def owned(refcounts: RefcountCheck, cluster_bits: int, clusters: np.ndarray) -> np.ndarray:
    """Which of ``clusters`` (ascending) hold owned metadata."""
    spans = {(first, last) for _, first, last, _ in owned_runs(refcounts, cluster_bits)}
    if not spans or not len(clusters):
        return np.zeros(len(clusters), bool)
    first, last = np.array(sorted(spans), np.int64).T
    # +1 where a span starts among the clusters, -1 past where it ends.
    depth = np.zeros(len(clusters) + 1, np.int64)
    np.add.at(depth, np.searchsorted(clusters, first, "left"), 1)
    np.add.at(depth, np.searchsorted(clusters, last, "right"), -1)
    inside: np.ndarray = np.cumsum(depth[:-1]) > 0
    return inside


def runs(clusters: np.ndarray, *keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the runs of ``clusters`` (ascending) start, and their lengths: a
    run is consecutive cluster indices with equal ``keys``."""
    if not len(clusters):
        return np.empty(0, np.intp), np.empty(0, np.intp)
    cut = np.diff(np.asarray(clusters, np.int64)) != 1
    for key in keys:
        cut |= key[1:] != key[:-1]
    starts = np.flatnonzero(np.concatenate([[True], cut]))
    return starts, np.diff(np.append(starts, len(clusters)))


def cluster_span(ctx: RuleContext, first: int, last: int) -> str:
    """How a message names a run of clusters: ``clusters 5..9 (offsets
    0x50000..0x90000, 5 clusters)``."""
    size = ctx.cluster_size
    return f"clusters {first}..{last} (offsets {first * size:#x}..{last * size:#x}, {last - first + 1} clusters)"


def stored_refcount(ctx: RuleContext, offset: int) -> int:
    """The stored refcount of the cluster at byte ``offset`` (for messages)."""
    stored = cast(StoredRefcounts, ctx.stored_refcounts)  # callers check it is there
    cluster = np.array([offset >> ctx.header.cluster_bits], np.uint64)
    return int(stored.of(cluster)[0][0])


def refcount_entry(ctx: RuleContext, cluster: int) -> tuple[int, str]:
    """Byte offset and structure path of the stored refcount of ``cluster``:
    ``refblock@0x20000[5]``, or the refcount table entry that should name
    its block (spec, "Host cluster management")."""
    header = ctx.header
    reftable = cast(RefcountTable, ctx.image.refcount_table)  # present whenever the image is readable
    block_bits = header.cluster_bits + 3 - header.refcount_order
    index, within = cluster >> block_bits, cluster & ((1 << block_bits) - 1)
    block = int(reftable.entries[index]) & spec.REFT_OFFSET_MASK if index < len(reftable.entries) else 0
    if block == 0:
        return reftable.file_offset + spec.REFTABLE_ENTRY_SIZE * index, f"reftable[{index}]"
    return block + (within << header.refcount_order) // 8, f"refblock@{block:#x}[{within}]"


def refcount_hits(
    ctx: RuleContext,
    clusters: np.ndarray,
    message: Callable[[int], str],
    *,
    refs: str | None = None,
    keys: tuple[np.ndarray, ...] = (),
    run: Callable[[int, int], str] | None = None,
    explains: bool = False,
) -> Iterator[Problem | Omitted]:
    """Problems located at the stored refcount of each cluster index, in
    ascending order.  With ``run``, each run of consecutive clusters with
    equal ``keys`` is one problem at its first cluster (``run(first, last)``
    gives the message; a run of one keeps ``message``).  ``refs`` says which
    way the refcount is wrong ("missing" or "extra" references) for the
    root-cause linking; with ``explains`` the other refcount findings of a
    problem's clusters follow from it."""
    raw = np.asarray(clusters, np.int64)
    order = np.argsort(raw, kind="stable")
    clusters = raw[order]
    if run is None:
        starts, lengths = np.arange(len(clusters)), np.ones(len(clusters), np.intp)
    else:
        starts, lengths = runs(clusters, *(np.asarray(key)[order] for key in keys))

    def make(index: int) -> Problem:
        first, count = int(clusters[starts[index]]), int(lengths[index])
        last = int(clusters[starts[index] + count - 1])
        offset, path = refcount_entry(ctx, first)
        text = message(first) if count == 1 or run is None else run(first, last)
        return Problem(
            offset, path, text, clusters=(first, last), refs=refs, explains=(first, last) if explains else None
        )

    yield from each_hit(ctx, np.arange(len(starts)), make)


def mismatch_hits(
    ctx: RuleContext, refcounts: RefcountCheck, select: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> Iterator[Problem | Omitted]:
    """Problems for the clusters whose stored and rebuilt refcounts differ
    in the way ``select(stored, computed)`` picks."""
    clusters, stored, computed = refcounts.mismatches
    hits = select(stored, computed)
    # A refcount other than 1 on owned metadata with its one reference is
    # metadata-refcount-not-one's finding.
    hits &= ~(owned(refcounts, ctx.header.cluster_bits, clusters) & (computed == 1))
    clusters, stored, computed = clusters[hits], stored[hits], computed[hits]

    def values(cluster: int) -> tuple[int, int]:  # clusters is ascending (flatnonzero)
        at = int(np.searchsorted(clusters, cluster))
        return int(stored[at]), int(computed[at])

    yield from refcount_hits(
        ctx,
        clusters,
        lambda c: (
            f"cluster {c} (offset {c * ctx.cluster_size:#x}) has refcount {values(c)[0]} but {values(c)[1]} references"
        ),
        refs="missing" if len(stored) and bool((stored > computed).all()) else "extra",
        keys=(stored, computed),
        run=lambda a, b: f"{cluster_span(ctx, a, b)} each have refcount {values(a)[0]} but {values(a)[1]} references",
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
    """What makes a backing or data file name from an untrusted image choose
    a host path, a device or a protocol by itself (absolute, under /dev,
    with a '..' component, with a protocol prefix), judged on the string
    alone (nothing is opened, stat'ed or resolved).  A plain relative name
    has no hazard here."""
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
