"""What every host cluster of an image holds, and how the guest sees the disk.

Built from one pass over the image: the engine's ordinary lint run, whose
L2 batches and refcount analysis (:class:`~qcow2lint.results.RefcountCheck`)
this module observes.  Nothing here rebuilds a refcount: the rebuilt and the
stored refcounts, the metadata extents and the statistics come from the
refcount pass; the L2 batches add where guest data and compressed data
live, which L2 tables exist, and the guest's view.

Memory (docs/cost-model.md): one byte per host cluster up to the highest
cluster a data or compressed reference names inside the file (16 MiB for a
1 TiB image of 64 KiB clusters), the metadata cluster list the refcount
pass also builds, and runs of equal guest states per L2 table.  Kinds are
computed a chunk of ``CHUNK`` clusters at a time and kept as runs and as
per-pixel counts (at most ``MAX_CELLS`` pixels): no other full-size array.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np

from qcow2lint import predicates, spec
from qcow2lint.findings import Finding
from qcow2lint.records import Image, L2Tables
from qcow2lint.results import CHECK_FIGURES, RefcountCheck

#: Host cluster kinds, least severe first, and what each means (for legends
#: and docs): where one pixel covers several clusters, the most severe kind
#: under it is drawn (a lone leaked cluster among millions of data clusters
#: shows).  Rare, small structures rank above the bulk (data, L2 tables) so
#: that they survive aggregation too.
KIND_TITLES: dict[str, str] = {
    "free": "free (refcount 0, no reference)",
    "data": "guest data",
    "compressed": "compressed data",
    "l2": "L2 tables",
    "snapshot-l2": "L2 tables of snapshots only",
    "refblock": "refcount blocks",
    "bitmap-data": "bitmap data",
    "bitmap-table": "bitmap tables",
    "bitmap-directory": "bitmap directory",
    "snapshot-l1": "snapshot L1 tables",
    "snapshot-table": "snapshot table",
    "luks": "LUKS header",
    "reftable": "refcount table",
    "l1": "L1 table",
    "header": "header, header extensions, backing file name",
    "unanalysed": "not analysed (the refcount analysis did not run)",
    "leaked": "leaked (refcount above its references)",
    "refcount-low": "refcount below its references",
    "refcount-zero": "referenced but refcount 0",
    "overlap": "overlapping (two owners)",
    "past-end": "referenced past the end of the file",
    "omitted": "not listed (too many runs)",
}
KINDS: tuple[str, ...] = tuple(KIND_TITLES)
KIND = {name: code for code, name in enumerate(KINDS)}

#: Guest cluster states, least notable first (the same aggregation rule).
GUEST_TITLES: dict[str, str] = {
    "unallocated": "unallocated (reads from the backing file, or zeros)",
    "zero": "reads as zeros",
    "sparse": "allocated, but a hole in the image file (reads as zeros)",
    "data": "data",
    "compressed": "compressed",
    "subclusters": "subclusters in mixed states (extended L2)",
    "unreadable": "L2 table outside the file",
    "omitted": "not listed (too many runs)",
}
GUEST_STATES: tuple[str, ...] = tuple(GUEST_TITLES)
GUEST = {name: code for code, name in enumerate(GUEST_STATES)}

#: Data extents of the image file looked up (SEEK_DATA/SEEK_HOLE); past
#: them the rest of the file counts as data.
MAX_FILE_EXTENTS = 1 << 16
#: Clusters classified per step: the temporaries stay this small.
CHUNK = 1 << 20
#: Pixels of a map picture: 256 x 256 at most.
MAX_CELLS = 1 << 16
#: Runs listed per map; past it the rest is one ``omitted`` run (the
#: counts per pixel and the figures stay exact).
MAX_RUNS = 1 << 20
#: The size ``qemu-img measure -O qcow2`` assumes for the copy: QEMU's
#: defaults for a new image (64 KiB clusters, 16-bit refcounts).
MEASURE_CLUSTER_SIZE = 1 << 16
MEASURE_REFCOUNT_ORDER = 4

_DATA, _COMPRESSED = 1, 2

_EXTENT_KINDS = {
    "header": "header",
    "active-l1": "l1",
    "inactive-l1": "snapshot-l1",
    "snapshot-table": "snapshot-table",
    "reftable": "reftable",
    "fde-area": "luks",
    "bitmap-directory": "bitmap-directory",
    "bitmap-table": "bitmap-table",
    "bitmap-data": "bitmap-data",
    "refblock": "refblock",
}


@attrs.frozen
class Layout:
    """How a map of ``cells`` units is drawn: ``per_pixel`` units per pixel,
    rows of ``width`` pixels (both powers of two, so every row starts at a
    round offset)."""

    cells: int
    per_pixel: int
    width: int

    @property
    def pixels(self) -> int:
        """Pixels drawn."""
        return -(-self.cells // self.per_pixel)

    @property
    def rows(self) -> int:
        """Rows of pixels."""
        return max(1, -(-self.pixels // self.width))

    @classmethod
    def for_cells(cls, cells: int) -> Layout:
        """The layout of a map of ``cells`` units within ``MAX_CELLS`` pixels."""
        per_pixel = 1
        while -(-cells // per_pixel) > MAX_CELLS:
            per_pixel <<= 1
        pixels = max(1, -(-cells // per_pixel))
        width = 8
        while width < 256 and width * width < 2 * pixels:
            width <<= 1
        return cls(cells, per_pixel, width)


@attrs.frozen
class Runs:
    """Runs of equal kinds: ``first`` unit, ``count`` and ``kind`` code each,
    tiling ``[0, total)``; ``counts`` per pixel of ``layout`` (pixels x kinds)."""

    first: np.ndarray = attrs.field(eq=False)
    count: np.ndarray = attrs.field(eq=False)
    kind: np.ndarray = attrs.field(eq=False)
    layout: Layout
    counts: np.ndarray = attrs.field(eq=False)
    #: Runs past ``MAX_RUNS`` folded into the last, ``omitted`` run.
    omitted: int = 0

    def totals(self, names: Sequence[str]) -> dict[str, int]:
        """Units of each kind (every kind named, zeros included)."""
        summed = self.counts.sum(axis=0)
        return {name: int(summed[code]) for code, name in enumerate(names)}

    def listed(self, names: Sequence[str]) -> list[list[object]]:
        """The runs as ``[first, count, kind name]``."""
        return [
            [int(f), int(c), names[int(k)]]
            for f, c, k in zip(self.first.tolist(), self.count.tolist(), self.kind.tolist())
        ]


@attrs.frozen
class FileMap:
    """The picture's data: host runs, guest runs, figures, findings."""

    path: str
    cluster_size: int
    file_size: int
    virtual_size: int
    #: Host clusters the map covers: the file's, or more when the refcount
    #: analysis compares more (QEMU's nb_clusters).
    file_clusters: int
    host: Runs
    guest: Runs
    figures: dict[str, object]
    findings: tuple[Finding, ...]
    #: References that end a cluster or more past the end of the file:
    #: (offset, length, label), the first ones.
    past_end: tuple[tuple[int, int, str], ...]
    names: dict[str, object]
    error: str | None = None


class MapBuilder:
    """Observes one lint run (``observe`` for the engine) and builds the map."""

    def __init__(self, image: Image) -> None:
        self.image = image
        header = image.header
        self.cluster_bits = header.cluster_bits if image.readable else 16
        self.cluster_size = 1 << self.cluster_bits
        self.file_clusters = -(-image.file_size // self.cluster_size)
        self.check: RefcountCheck | None = None
        #: Per host cluster: _DATA, _COMPRESSED bits (grown on demand).
        self.flags = np.zeros(0, np.uint8)
        self.l2_active: list[np.ndarray] = []
        self.l2_inactive: list[np.ndarray] = []
        # Guest runs per active L2 table: table offset, first entry, state.
        self.table_runs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.entries_per_table = 0
        self._extents: tuple[np.ndarray, np.ndarray] | None = None

    # --- observing ------------------------------------------------------------------

    def observe(self, record: object) -> None:
        """Take what the map needs from one record of the lint run."""
        if isinstance(record, L2Tables):
            self._batch(record)
        elif isinstance(record, RefcountCheck):
            self.check = record

    def _mark(self, clusters: np.ndarray, flag: int) -> None:
        clusters = clusters[clusters < np.uint64(self.file_clusters + 1)].astype(np.int64)
        if not len(clusters):
            return
        self._grow(int(clusters.max()) + 1)
        self.flags[clusters] |= flag

    def _grow(self, top: int) -> None:
        if top > len(self.flags):
            grown = np.zeros(max(top, min(max(2 * len(self.flags), 1 << 16), self.file_clusters + 1)), np.uint8)
            grown[: len(self.flags)] = self.flags
            self.flags = grown

    def _mark_range(self, start: int, stop: int, flag: int) -> None:
        """Mark clusters ``start`` to ``stop - 1`` (a run of a preallocated table)."""
        stop = min(stop, self.file_clusters + 1)
        if start >= stop:
            return
        self._grow(stop)
        span = self.flags[start:stop]
        np.bitwise_or(span, flag, out=span)

    def _batch(self, batch: L2Tables) -> None:
        refs = batch.active_refs if batch.active_refs is not None else np.ones(len(batch.offsets), np.int64)
        self.l2_active.append(batch.offsets[refs > 0])
        self.l2_inactive.append(batch.offsets[refs == 0])
        columns = batch.entries.shape[1]
        self.entries_per_table = columns
        if not batch.data_file:
            flat, offsets = predicates.allocated_entries(batch)
            runs = predicates.allocated_runs(batch, self.cluster_bits)
            if runs is not None and not len(predicates.misaligned_offsets(batch, self.cluster_size)):
                for first, count in zip(*runs):
                    self._mark_range(first, first + count, _DATA)
            else:
                self._mark(offsets >> np.uint64(self.cluster_bits), _DATA)
            packed = predicates.compressed_entries(batch)
            if len(packed):
                entries = batch.entries.ravel()[packed]
                start, size = predicates.compressed_ranges(entries, self.cluster_bits)
                first = start >> np.uint64(self.cluster_bits)
                last = (start + size - np.uint64(1)) >> np.uint64(self.cluster_bits)
                spans = (last - first).astype(np.int64)
                for extra in range(int(spans.max(initial=0)) + 1):
                    self._mark(first[spans >= extra] + np.uint64(extra), _COMPRESSED)
        active = np.flatnonzero(refs > 0)
        if len(active):
            self._guest_batch(batch, active)

    def _guest_batch(self, batch: L2Tables, rows: np.ndarray) -> None:
        """Runs of equal guest states in each active L2 table of the batch."""
        columns = batch.entries.shape[1]
        entries = batch.entries[rows]
        plain_data = (
            batch.bitmaps is None
            and len(rows) == len(batch.offsets)
            and not batch.may_have(spec.OFLAG_ZERO | spec.OFLAG_COMPRESSED)
            and predicates.all_allocated(batch)
        )
        if plain_data:  # a preallocated or fully written batch: every entry is data
            types = np.empty(0, np.uint8)
            states = np.full(entries.shape, GUEST["data"], np.uint8)
        else:
            flat_rows = (rows[:, None] * columns + np.arange(columns)[None, :]).ravel()
            types = batch.cluster_types(flat_rows).reshape(entries.shape)
            states = np.full(entries.shape, GUEST["unallocated"], np.uint8)
            states[(types == spec.CLUSTER_ZERO_PLAIN) | (types == spec.CLUSTER_ZERO_ALLOC)] = GUEST["zero"]
            states[types == spec.CLUSTER_NORMAL] = GUEST["data"]
            states[types == spec.CLUSTER_COMPRESSED] = GUEST["compressed"]
        if batch.bitmaps is not None:
            # Extended L2 (spec, "Extended L2 Entries"): 32 allocation bits
            # and 32 zero bits per cluster decide what each subcluster reads.
            bitmaps = batch.bitmaps[rows]
            alloc = bitmaps & np.uint64(spec.SUBCLUSTER_ALLOC_MASK)
            zero = bitmaps >> np.uint64(32)
            full = np.uint64(spec.SUBCLUSTER_ALLOC_MASK)
            plain = types != spec.CLUSTER_COMPRESSED
            states[plain & (alloc == full)] = GUEST["data"]
            states[plain & (alloc == 0) & (zero == full)] = GUEST["zero"]
            states[plain & (alloc == 0) & (zero == 0)] = GUEST["unallocated"]
            mixed = plain & ~(alloc == full) & ~((alloc == 0) & ((zero == full) | (zero == 0)))
            states[mixed] = GUEST["subclusters"]
        if not batch.data_file:
            # A data cluster in a hole of the image file reads as zeros (as
            # QEMU's block status says, and measure counts it so).
            if plain_data:
                holes = self._in_hole(batch.host_offsets.ravel())
                if holes is not None:
                    states.ravel()[holes] = GUEST["sparse"]
            else:
                data = np.flatnonzero(states.ravel() == GUEST["data"])
                if len(data):
                    holes = self._in_hole(batch.host_offsets[rows].ravel()[data])
                    if holes is not None:
                        states.ravel()[data[holes]] = GUEST["sparse"]
        flat = states.ravel()
        starts = np.flatnonzero(np.concatenate([[True], flat[1:] != flat[:-1]]) | (np.arange(flat.size) % columns == 0))
        self.table_runs.append(
            (batch.offsets[rows][starts // columns], (starts % columns).astype(np.int64), flat[starts])
        )

    def _in_hole(self, offsets: np.ndarray) -> np.ndarray | slice | None:
        """Where the host clusters at ``offsets`` lie wholly in a hole of the
        image file (its allocation map, not its content): a mask, ``slice(None)``
        for all of them, None for none."""
        if self._extents is None:
            self._extents = _data_extents(self.image.path, self.image.file_size)
        starts, ends = self._extents
        if not len(offsets):
            return None
        low, high = offsets.min(), offsets.max() + np.uint64(self.cluster_size)
        # The usual cases, decided for the whole batch: all in one hole, or
        # all inside one data extent.
        first = int(np.searchsorted(ends, low, "right"))
        if first == len(starts) or starts[first] >= high:
            return slice(None)
        if starts[first] <= low and ends[first] >= high:
            return None
        bits = np.uint64(self.cluster_bits)
        span = int((high - low) >> bits) + 1
        if span <= 4 * len(offsets) + 4096:
            # Clusters of [low, high) that hold a data byte, from the extents
            # that meet the range (a difference array: no loop per extent).
            last = int(np.searchsorted(starts, high, "left"))
            begin = (np.maximum(starts[first:last], low) - low) >> bits
            end = ((np.minimum(ends[first:last], high) - low - np.uint64(1)) >> bits) + np.uint64(1)
            diff = np.zeros(span + 1, np.int32)
            np.add.at(diff, begin.astype(np.int64), 1)
            np.add.at(diff, end.astype(np.int64), -1)
            touched = np.cumsum(diff[:span]) > 0
            head = ((offsets - low) >> bits).astype(np.int64)
            tail = ((offsets - low + np.uint64(self.cluster_size - 1)) >> bits).astype(np.int64)
            return ~touched[head] & ~touched[np.minimum(tail, span - 1)]
        index = np.searchsorted(ends, offsets, "right")
        inside = index < len(starts)
        hole = ~inside
        hole[inside] = starts[index[inside]] >= offsets[inside] + np.uint64(self.cluster_size)
        return hole

    # --- building -------------------------------------------------------------------

    def build(self, path: str, findings: Sequence[Finding], stats: dict[str, int] | None) -> FileMap:
        """The map, once the lint run is over."""
        image = self.image
        host = self._host()
        guest = self._guest()
        figures = self._figures(host, guest, stats or {})
        check = self.check
        past_end: tuple[tuple[int, int, str], ...] = ()
        if check is not None:
            past_end = tuple((e.offset, e.length, e.label) for e in check.exceeding)
        return FileMap(
            path,
            self.cluster_size,
            image.file_size,
            image.header.size if image.readable else 0,
            host.layout.cells - (1 if past_end else 0),
            host,
            guest,
            figures,
            tuple(findings),
            past_end,
            _names(image),
        )

    def _metadata(self) -> tuple[np.ndarray, np.ndarray]:
        """Every metadata cluster (sorted) and its kind code, a cluster once
        per distinct structure (the same table named twice is one)."""
        check = self.check
        assert check is not None
        bits = self.cluster_bits
        limit = max(self.file_clusters, check.compared)
        seen: set[tuple[int, int, str]] = set()
        clusters: list[np.ndarray] = []
        kinds: list[np.ndarray] = []
        for extent in check.metadata:
            kind = _EXTENT_KINDS.get(extent.kind, "header")
            key = (extent.offset, extent.length, kind)
            if key in seen or extent.length <= 0:
                continue
            seen.add(key)
            first = extent.offset >> bits
            last = min((extent.offset + min(extent.length, spec.MAX_MAPPED_EXTENT) - 1) >> bits, limit - 1)
            if first > last:
                continue
            clusters.append(np.arange(first, last + 1, dtype=np.int64))
            kinds.append(np.full(last - first + 1, KIND[kind], np.uint8))
        for tables, kind in ((self.l2_active, "l2"), (self.l2_inactive, "snapshot-l2")):
            offsets = np.concatenate(tables) if tables else np.empty(0, np.uint64)
            starts = (offsets >> np.uint64(bits)).astype(np.int64)
            spill = (offsets & np.uint64(self.cluster_size - 1)) != 0  # a misaligned table covers two
            both = np.concatenate([starts, starts[spill] + 1])
            both = both[both < limit]
            clusters.append(both)
            kinds.append(np.full(len(both), KIND[kind], np.uint8))
        every = np.concatenate(clusters) if clusters else np.empty(0, np.int64)
        codes = np.concatenate(kinds) if kinds else np.empty(0, np.uint8)
        order = np.argsort(every, kind="stable")
        return every[order], codes[order]

    def _host(self) -> Runs:
        check = self.check
        if check is None:
            cells = max(self.file_clusters, 1)
            layout = Layout.for_cells(cells)
            return _runs_from(
                np.array([0]), np.array([cells]), np.array([KIND["unanalysed"]], np.uint8), layout, len(KINDS)
            )
        total = max(self.file_clusters, check.compared, 1)
        past = 1 if check.exceeding_count else 0
        layout = Layout.for_cells(total + past)
        meta_clusters, meta_kinds = self._metadata()
        stored, computed = check.stored, check.computed
        readable = stored.readable_mask if stored.unreadable is not None else None
        # Past this cluster nothing is stored, referenced or metadata: free.
        active_end = min(
            total,
            max(
                len(computed),
                stored.length,
                len(self.flags),
                int(meta_clusters[-1]) + 1 if len(meta_clusters) else 0,
            ),
        )
        counts = np.zeros((layout.pixels, len(KINDS)), np.int64)
        collector = _RunCollector()
        for start in range(0, active_end, CHUNK):
            stop = min(active_end, start + CHUNK)
            kinds = self._classify(start, stop, meta_clusters, meta_kinds, readable)
            collector.add(start, kinds)
            _add_chunk_counts(counts, layout.per_pixel, start, kinds)
        tail = [(active_end, total - active_end, KIND["free"])] if total > active_end else []
        if past:
            tail.append((total, 1, KIND["past-end"]))
        for at, length, code in tail:
            collector.add_run(at, length, code)
            _add_run_counts(counts, layout.per_pixel, np.array([at]), np.array([length]), np.array([code]))
        first, count, kind, omitted = collector.result(total + past, KIND["omitted"])
        return Runs(first, count, kind, layout, counts, omitted)

    def _classify(
        self,
        start: int,
        stop: int,
        meta_clusters: np.ndarray,
        meta_kinds: np.ndarray,
        readable: object,
    ) -> np.ndarray:
        """The kind of clusters ``start`` to ``stop - 1``."""
        check = self.check
        assert check is not None
        length = stop - start
        kinds = np.zeros(length, np.uint8)
        flags = _padded(self.flags[start:stop], length)
        kinds[(flags & _DATA) != 0] = KIND["data"]
        kinds[(flags & _COMPRESSED) != 0] = KIND["compressed"]
        low, high = np.searchsorted(meta_clusters, [start, stop])
        where = meta_clusters[low:high] - start
        owners = np.bincount(where, minlength=length)[:length] if len(where) else np.zeros(length, np.int64)
        meta = np.zeros(length, np.uint8)
        np.maximum.at(meta, where, meta_kinds[low:high])
        is_meta = owners > 0
        kinds[is_meta] = meta[is_meta]
        computed = _padded(check.computed[start:stop], length)
        stored = check.stored.values(start, stop)
        referenced = computed > 0
        # A cluster referenced by something else than a structure or an L2
        # entry seen here (check.computed counts every reference) holds data.
        kinds[referenced & (kinds == KIND["free"])] = KIND["data"]
        differ = np.flatnonzero(stored != computed)
        if readable is not None and len(differ):
            differ = differ[readable(start, stop)[differ]]  # type: ignore[operator]
        differ = differ[differ < check.compared - start]
        if len(differ):
            have, want = stored[differ], computed[differ]
            kinds[differ[have > want]] = KIND["leaked"]
            kinds[differ[(have > 0) & (have < want)]] = KIND["refcount-low"]
            kinds[differ[have == 0]] = KIND["refcount-zero"]
        # Two owners: two metadata structures, metadata and data, or normal
        # and compressed data in one cluster (spec, "Host cluster management").
        overlap = (owners > 1) | (is_meta & (flags != 0)) | (flags == (_DATA | _COMPRESSED))
        kinds[overlap] = KIND["overlap"]
        return kinds

    def _guest(self) -> Runs:
        image = self.image
        size = image.header.size if image.readable else 0
        total = -(-size // self.cluster_size) if size > 0 else 0
        per_table = self.entries_per_table or (
            self.cluster_size // (spec.EXTL2_ENTRY_SIZE if image.readable and image.header.extended_l2 else 8)
        )
        cells = max(total, 1)
        layout = Layout.for_cells(cells)
        if image.l1 is None or total == 0:
            return _runs_from(
                np.array([0]), np.array([cells]), np.array([GUEST["unallocated"]], np.uint8), layout, len(GUEST_STATES)
            )
        if self.table_runs:
            offsets = np.concatenate([t[0] for t in self.table_runs])
            columns = np.concatenate([t[1] for t in self.table_runs])
            states = np.concatenate([t[2] for t in self.table_runs])
        else:
            offsets, columns, states = np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.uint8)
        tables, first_run, runs_per_table = np.unique(offsets, return_index=True, return_counts=True)
        covered = min(len(image.l1.entries), -(-total // per_table))
        l1 = image.l1.entries[:covered] & np.uint64(spec.L1E_OFFSET_MASK)
        index = np.searchsorted(tables, l1)
        safe = np.minimum(index, max(len(tables) - 1, 0))
        found = (l1 != 0) & (index < len(tables))
        if len(tables):
            found &= tables[safe] == l1
        per_entry = np.where(found, runs_per_table[safe] if len(tables) else 1, 1).astype(np.int64)
        ends = np.cumsum(per_entry)
        omitted = 0
        kept = covered
        if len(ends) and int(ends[-1]) > MAX_RUNS:
            kept = int(np.searchsorted(ends, MAX_RUNS, "right"))
        per_entry, ends = per_entry[:kept], ends[:kept]
        entry = np.repeat(np.arange(kept, dtype=np.int64), per_entry)
        within = np.arange(int(ends[-1]) if kept else 0, dtype=np.int64) - np.repeat(ends - per_entry, per_entry)
        hit = found[:kept][entry]
        run = np.where(hit, first_run[safe[:kept]][entry] + within if len(tables) else 0, 0)
        first = entry * per_table + np.where(hit, columns[run] if len(columns) else 0, 0)
        state = np.where(
            hit,
            states[run] if len(states) else 0,
            np.where(l1[:kept][entry] == 0, GUEST["unallocated"], GUEST["unreadable"]),
        ).astype(np.uint8)
        end_of_map = kept * per_table
        if kept < covered:
            omitted = int(ends[-1]) if len(ends) else 0
        first = np.concatenate([first, [end_of_map]])
        tail_state = GUEST["omitted"] if kept < covered else GUEST["unallocated"]
        state = np.concatenate([state, [tail_state]]).astype(np.uint8)
        # Merge equal neighbours, clip at the virtual size.
        keep = np.concatenate([[True], state[1:] != state[:-1]])
        first, state = first[keep], state[keep]
        inside = first < total
        first, state = first[inside], state[inside]
        count = np.diff(np.concatenate([first, [total]]))
        return _runs_from(first, count, state, layout, len(GUEST_STATES), omitted)

    def _figures(self, host: Runs, guest: Runs, stats: dict[str, int]) -> dict[str, object]:
        image = self.image
        kinds = host.totals(KINDS)
        states = guest.totals(GUEST_STATES)
        cs = self.cluster_size
        figures: dict[str, object] = {
            "file-size": image.file_size,
            "virtual-size": image.header.size if image.readable else 0,
            "cluster-size": cs,
        }
        for key in CHECK_FIGURES[:-1]:  # check-errors: the page's findings say why
            if key in stats:
                figures[key] = stats[key]
        figures["leaked-clusters"] = kinds["leaked"]
        figures["leaked-bytes"] = kinds["leaked"] * cs
        figures["free-clusters"] = kinds["free"]
        figures["overlapping-clusters"] = kinds["overlap"]
        figures["references-past-end"] = self.check.exceeding_count if self.check is not None else 0
        metadata = sum(kinds[k] for k in KINDS[3:15])
        figures["metadata-clusters"] = metadata
        figures["data-clusters"] = kinds["data"] + kinds["compressed"]
        figures["guest-clusters"] = {name: states[name] for name in GUEST_STATES if name != "omitted"}
        if image.readable:
            measured = measure_size(image.header.size, guest, cs)
            figures["measure-required"] = measured
            figures["measure-exact"] = image.backing_file_name is None and not image.header.extended_l2
            figures["reclaimable"] = max(image.file_size - measured, 0)
        return figures


class _RunCollector:
    """Run-length encodes chunks of kinds, up to ``MAX_RUNS`` runs."""

    def __init__(self) -> None:
        self.first: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []
        self.listed = 0
        self.last = -1
        self.stopped_at: int | None = None
        self.omitted = 0

    def add(self, start: int, kinds: np.ndarray) -> None:
        change = np.flatnonzero(np.concatenate([[int(kinds[0]) != self.last], kinds[1:] != kinds[:-1]]))
        self.last = int(kinds[-1])
        self._append(change + start, kinds[change])

    def add_run(self, first: int, count: int, kind: int) -> None:
        if count <= 0:
            return
        if kind != self.last:
            self._append(np.array([first]), np.array([kind], np.uint8))
        self.last = kind

    def _append(self, first: np.ndarray, kind: np.ndarray) -> None:
        if self.stopped_at is not None:
            self.omitted += len(first)
            return
        room = MAX_RUNS - self.listed
        if len(first) > room:
            self.omitted += len(first) - room
            self.stopped_at = int(first[room])
            first, kind = first[:room], kind[:room]
        self.first.append(first.astype(np.int64))
        self.kind.append(kind.astype(np.uint8))
        self.listed += len(first)

    def result(self, total: int, omitted_kind: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        first = np.concatenate(self.first) if self.first else np.zeros(1, np.int64)
        kind = np.concatenate(self.kind) if self.kind else np.zeros(1, np.uint8)
        if self.stopped_at is not None:
            first = np.concatenate([first, [self.stopped_at]])
            kind = np.concatenate([kind, [omitted_kind]]).astype(np.uint8)
        count = np.diff(np.concatenate([first, [total]]))
        return first, count, kind, self.omitted


def _data_extents(path: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The data extents of the file (start, end arrays), from SEEK_DATA and
    SEEK_HOLE; the whole file where the file system cannot say."""
    import os

    starts: list[int] = []
    ends: list[int] = []
    whole = (np.array([0], np.uint64), np.array([max(size, 0)], np.uint64))
    if not hasattr(os, "SEEK_DATA"):
        return whole
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return whole
    try:
        position = 0
        while position < size:
            if len(starts) >= MAX_FILE_EXTENTS:
                starts.append(position)
                ends.append(size)
                break
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError:  # ENXIO: no data past position
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            starts.append(start)
            ends.append(end)
            position = end
    except OSError:
        return whole
    finally:
        os.close(fd)
    return np.array(starts, np.uint64), np.array(ends, np.uint64)


def _padded(values: np.ndarray, length: int) -> np.ndarray:
    if len(values) >= length:
        return values[:length]
    return np.concatenate([values, np.zeros(length - len(values), values.dtype)])


def _add_chunk_counts(counts: np.ndarray, per_pixel: int, start: int, kinds: np.ndarray) -> None:
    """Add the kinds of clusters ``start``... (``start`` a multiple of the
    chunk) to the per-pixel counts."""
    if per_pixel >= len(kinds) and start // per_pixel == (start + len(kinds) - 1) // per_pixel:
        counts[start // per_pixel] += np.bincount(kinds, minlength=counts.shape[1])
        return
    change = np.flatnonzero(kinds[1:] != kinds[:-1]) + 1
    if len(change) < len(kinds) // 64:  # a few runs: count them whole
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [len(kinds)]]))
        _add_run_counts(counts, per_pixel, starts + start, lengths, kinds[starts])
        return
    whole = len(kinds) // per_pixel * per_pixel
    first = start // per_pixel
    if whole:
        grid = kinds[:whole].reshape(-1, per_pixel)
        for code in np.flatnonzero(np.bincount(kinds[:whole], minlength=counts.shape[1])).tolist():
            counts[first : first + len(grid), code] += np.count_nonzero(grid == code, axis=1)
    if whole < len(kinds):
        counts[first + whole // per_pixel] += np.bincount(kinds[whole:], minlength=counts.shape[1])


def _add_run_counts(counts: np.ndarray, per_pixel: int, first: np.ndarray, count: np.ndarray, kind: np.ndarray) -> None:
    """Add runs to per-pixel counts (pixels x kinds) without expanding them."""
    first = first.astype(np.int64)
    last = first + count.astype(np.int64) - 1
    kind = kind.astype(np.int64)
    a, b = first // per_pixel, last // per_pixel
    same = a == b
    np.add.at(counts, (a[same], kind[same]), count[same].astype(np.int64))
    a, b, f, lst, k = a[~same], b[~same], first[~same], last[~same], kind[~same]
    np.add.at(counts, (a, k), (a + 1) * per_pixel - f)
    np.add.at(counts, (b, k), lst - b * per_pixel + 1)
    # Whole pixels between: a difference array along the pixels.
    inner = b - a > 1
    if inner.any():
        low, high = int(a[inner].min()) + 1, int(b[inner].max())
        diff = np.zeros((high - low + 1, counts.shape[1]), np.int64)
        np.add.at(diff, (a[inner] + 1 - low, k[inner]), per_pixel)
        np.add.at(diff, (b[inner] - low, k[inner]), -per_pixel)
        counts[low:high] += np.cumsum(diff, axis=0)[:-1]


def _runs_from(
    first: np.ndarray, count: np.ndarray, kind: np.ndarray, layout: Layout, kinds: int, omitted: int = 0
) -> Runs:
    counts = np.zeros((layout.pixels, kinds), np.int64)
    first, count, kind = first.astype(np.int64), count.astype(np.int64), kind.astype(np.uint8)
    _add_run_counts(counts, layout.per_pixel, first, count, kind)
    return Runs(first, count, kind, layout, counts, omitted)


def refcount_metadata_size(clusters: int, cluster_size: int, refcount_order: int) -> int:
    """QEMU's qcow2_refcount_metadata_size: the refcount table and blocks
    that count ``clusters`` clusters and themselves (the fixed point)."""
    per_table_cluster = cluster_size // spec.REFTABLE_ENTRY_SIZE
    per_block = cluster_size * 8 // (1 << refcount_order)
    table = blocks = 0
    last, n = -1, 0
    while n != last:
        last = n
        blocks = -(-(clusters + table + blocks) // per_block)
        table = -(-blocks // per_table_cluster)
        n = clusters + blocks + table
    return (blocks + table) * cluster_size


def prealloc_size(virtual_size: int, cluster_size: int, refcount_order: int) -> int:
    """QEMU's qcow2_calc_prealloc_size (standard L2 entries): a fully
    allocated image of ``virtual_size`` bytes, metadata included."""
    aligned = -(-virtual_size // cluster_size) * cluster_size
    meta = cluster_size  # the header
    per_l2 = cluster_size // spec.L2_ENTRY_SIZE
    l2_entries = -(-(aligned // cluster_size) // per_l2) * per_l2
    meta += l2_entries * spec.L2_ENTRY_SIZE
    per_l1_cluster = cluster_size // spec.L1_ENTRY_SIZE
    l1_entries = -(-(l2_entries * spec.L2_ENTRY_SIZE // cluster_size) // per_l1_cluster) * per_l1_cluster
    meta += l1_entries * spec.L1_ENTRY_SIZE
    meta += refcount_metadata_size((meta + aligned) // cluster_size, cluster_size, refcount_order)
    return meta + aligned


def measure_size(virtual_size: int, guest: Runs, cluster_size: int) -> int:
    """The "required size" of ``qemu-img measure -O qcow2`` (QEMU's
    qcow2_measure with the default options): a fully allocated image's
    metadata plus the new clusters that hold data.  Data is every guest
    cluster that reads data (plain, compressed, or with an allocated
    subcluster); zero and unallocated clusters are skipped, as measure skips
    them when the image has no backing file (with one, measure counts the
    backing file's data too, which is never opened here)."""
    out = MEASURE_CLUSTER_SIZE
    data = np.isin(guest.kind, [GUEST["data"], GUEST["compressed"], GUEST["subclusters"]])
    required = 0
    if data.any():
        start = [int(f) * cluster_size for f in guest.first[data].tolist()]
        count = guest.count[data].tolist()
        low = np.array([s // out for s in start], object)
        high = np.array(
            [-(-min((f + int(n) * cluster_size), virtual_size) // out) for f, n in zip(start, count)], object
        )
        touched = int((high - low).sum())
        # A new cluster shared by two runs (old clusters smaller than new) counts once.
        touched -= int(np.count_nonzero(high[:-1] > low[1:]))
        required = touched * out
    aligned = -(-virtual_size // out) * out
    return prealloc_size(aligned, out, MEASURE_REFCOUNT_ORDER) - aligned + required


def _names(image: Image) -> dict[str, object]:
    """Names from the image (snapshot, bitmap, backing file): as text, for
    the picture to show as text only."""
    names: dict[str, object] = {}
    if image.backing_file_name is not None:
        names["backing-file"] = image.backing_file_name.decode("utf-8", "replace")[:1024]
    if image.snapshots is not None:
        names["snapshots"] = [entry.name.decode("utf-8", "replace")[:1024] for entry in image.snapshots.entries[:1000]]
    if image.bitmap_directory:
        names["bitmaps"] = [str(entry.name)[:1024] for entry in image.bitmap_directory[:1000]]
    return names
