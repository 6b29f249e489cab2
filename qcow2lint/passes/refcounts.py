"""Job 2 of the refcount analysis: the refcounts rebuilt from every reference,
and the registered pass that runs the whole analysis.

The analysis rebuilds the reference count of every cluster from every
structure that points into the file (spec, "Host cluster management": header, active and
snapshot L1 tables, their L2 tables and data clusters, compressed clusters
by the sectors they span, the snapshot table, the refcount table, refcount
blocks, the encryption area, the bitmap directory, tables and data), and
compares it with the stored refcounts of any width.  Alongside it builds a
typed extent map of the metadata to find overlaps (§2.12) and counts the
statistics of ``qemu-img check --output=json``.

It follows QEMU's ``qcow2_check_refcounts`` step by step (reading order,
which references count, when a reference past the end of the file is a
corruption, saturation at the refcount maximum) so that its counts equal
QEMU's on every image QEMU can check.  It works on whole arrays, one L2
batch at a time: the allocated entries of a batch usually map a few runs of
consecutive clusters (``predicates.allocated_runs``), each counted as one
in-place slice addition; scattered ones are added with ``np.bincount``.  The
rebuilt counts take one byte per cluster (widened only when a count needs
it) and the stored ones a bit (:mod:`.stored`), compared a chunk at a time:
a 1 TiB image costs about 20 MB and a few passes over its L2 tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar

import attrs
import numpy as np

from qcow2lint import arrays, predicates, spec
from qcow2lint.passes.base import MAX_EVENTS
from qcow2lint.passes.extents import ExtentMap
from qcow2lint.passes.stored import cluster_count, stored_refcounts
from qcow2lint.reader import ImageFile
from qcow2lint.records import Image, L1Table, L2Tables
from qcow2lint.results import Extent, RefcountCheck, RefcountIssue, StoredRefcounts

#: Clusters compared per step at the end of the analysis: the comparison's
#: temporaries stay this small whatever the image's size.
CHUNK = 1 << 20


class RefcountPass:
    """The whole-image refcount and overlap analysis, as a registered pass:
    produces the :class:`~qcow2lint.results.RefcountCheck` record."""

    record: ClassVar[type] = RefcountCheck
    statistics: ClassVar[bool] = True
    title: ClassVar[str] = "the whole-image refcount analysis"
    skips: ClassVar[str] = "refcount and overlap rules"

    def __init__(self) -> None:
        self.builder: RefcountBuilder | None = None

    def start(self, image_file: ImageFile) -> bool:
        """Decode the stored refcounts and count every metadata structure;
        False when the image is too large to analyse."""
        stored = stored_refcounts(image_file)
        self.builder = RefcountBuilder(image_file.image, stored) if stored is not None else None
        return self.builder is not None

    def add(self, batch: L2Tables) -> None:
        """Count the references of one L2 batch."""
        assert self.builder is not None
        self.builder.add_batch(batch)

    def finish(self) -> RefcountCheck:
        """Compare, and return the check."""
        assert self.builder is not None
        return self.builder.finish()


class RefcountBuilder:
    """Accumulates references as QEMU's calculate_refcounts does.

    Create it before the L2 pass, feed it every L2 batch, then ``finish``.
    """

    def __init__(self, image: Image, stored: StoredRefcounts) -> None:
        self.image = image
        header = image.header
        self.stored = stored
        self.cluster_bits = header.cluster_bits
        self.cluster_size = header.cluster_size
        self.file_size = image.file_size
        self.refcount_max = (1 << header.refcount_bits) - 1
        # The narrowest dtype that holds the counts so far, widened on demand
        # (most clusters have one reference: one byte each).
        self.computed = np.zeros(stored.length, np.uint8)
        self.compared = -(-image.file_size // self.cluster_size)
        self.exceeding: list[Extent] = []
        self.exceeding_count = 0
        self.overflows: list[int] = []
        self.overflow_count = 0
        self.corruptions = 0
        self.check_errors = 0
        self.stats = {"allocated-clusters": 0, "fragmented-clusters": 0, "compressed-clusters": 0}
        self.refblock_issues: list[RefcountIssue] = []
        #: The typed extent map, built alongside the counts.
        self.extents = ExtentMap(self.cluster_bits, self.cluster_size)
        #: Host clusters holding compressed data (several compressed
        #: clusters may share one, legitimately).
        self.compressed_hosts: list[np.ndarray] = []
        self._metadata_pass()

    # --- counting -------------------------------------------------------------

    def region(self, kind: str, label: str, offset: int, length: int, count: int = 1) -> None:
        """QEMU's qcow2_inc_refcounts_imrt for one structure, ``count`` times."""
        if length <= 0 or count <= 0:
            return
        if offset + length - self.file_size >= self.cluster_size:
            self._exceed(Extent(kind, label, offset, length), count)
            return
        first, last = offset >> self.cluster_bits, (offset + length - 1) >> self.cluster_bits
        self._add_range(first, last + 1, count)

    def _add_range(self, start: int, stop: int, count: int) -> None:
        """Add ``count`` to the counts of clusters ``start`` to ``stop - 1``."""
        if stop > len(self.computed):
            self._grow(stop)
        top = int(self.computed[start:stop].max()) + count
        if top <= self.refcount_max:  # the usual case: in place, no index array
            self._hold(top)
            span = self.computed[start:stop]
            np.add(span, count, out=span, casting="unsafe")
            return
        self._add(np.arange(start, stop, dtype=np.int64), np.full(stop - start, count, np.int64))

    def _hold(self, value: int) -> None:
        """Widen the counts' dtype, if need be, to hold ``value`` (at most refcount_max)."""
        if value > np.iinfo(self.computed.dtype).max:
            self.computed = self.computed.astype(np.min_scalar_type(min(value, self.refcount_max)))

    def _exceed(self, extent: Extent, count: int) -> None:
        self.exceeding_count += count
        self.corruptions += count
        if len(self.exceeding) < MAX_EVENTS:
            self.exceeding.append(extent)

    def _add(self, clusters: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Add ``weights`` (default 1) to the counts of ``clusters``,
        saturating at refcount_max as QEMU does (each lost increment is an
        overflow corruption)."""
        if len(clusters) == 0:
            return
        clusters = clusters.view(np.int64) if clusters.dtype == np.uint64 else clusters.astype(np.int64, copy=False)
        low, high = int(clusters.min()), int(clusters.max())
        if high >= len(self.computed):
            self._grow(high + 1)
        if high - low < 4 * len(clusters) + 65536:
            added = np.bincount(clusters - low, weights, minlength=high - low + 1)
            top = int(added.max()) + int(self.computed[low : high + 1].max())
            if top <= self.refcount_max:  # the usual case: in place
                self._hold(top)
                region = self.computed[low : high + 1]
                np.add(region, added, out=region, casting="unsafe")
                return
            where = np.flatnonzero(added) + low
            added = added[added != 0]
        else:
            where, inverse = arrays.unique_inverse(clusters)
            added = np.bincount(inverse, weights, minlength=len(where))
        total = self.computed[where].astype(np.uint64) + added.astype(np.uint64)
        over = total > np.uint64(self.refcount_max)
        if over.any():
            lost = int((total[over] - np.uint64(self.refcount_max)).sum())
            self.overflow_count += lost
            self.corruptions += lost
            self.overflows += [int(c) << self.cluster_bits for c in where[over][: MAX_EVENTS - len(self.overflows)]]
            total[over] = self.refcount_max
        self._hold(int(total.max(initial=0)))
        self.computed[where] = total.astype(self.computed.dtype)

    def _grow(self, length: int) -> None:
        self.computed = np.concatenate([self.computed, np.zeros(length - len(self.computed), self.computed.dtype)])

    def _outside(self, offsets: np.ndarray, length: int) -> np.ndarray:
        """QEMU's "exceeding the end of the file by one cluster or more":
        offset + length - file_size >= cluster_size, in exact integers."""
        limit = self.file_size + self.cluster_size - length
        return offsets >= np.uint64(max(limit, 0))

    def clusters_of(
        self, kind: str, label: str, offsets: np.ndarray, length: int, weights: np.ndarray | None = None
    ) -> None:
        """``region`` for many structures of one length (vectorised);
        ``weights`` None means one reference each."""
        offsets = offsets.astype(np.uint64, copy=False)
        outside = self._outside(offsets, length)
        if outside.any():
            for index in np.flatnonzero(outside)[: MAX_EVENTS - len(self.exceeding)].tolist():
                self.exceeding.append(Extent(kind, f"{label}@{int(offsets[index]):#x}", int(offsets[index]), length))
            lost = int(weights[outside].sum()) if weights is not None else int(outside.sum())
            self.exceeding_count += lost
            self.corruptions += lost
            offsets = offsets[~outside]
            weights = weights[~outside] if weights is not None else None
        first = offsets >> np.uint64(self.cluster_bits)
        self._add(first, weights)
        # A range that is not cluster-aligned, or longer than a cluster,
        # touches the following clusters too (QEMU counts each once).
        tail = (offsets & np.uint64(self.cluster_size - 1)) + np.uint64(length - 1)
        spill = tail >> np.uint64(self.cluster_bits)
        for extra in range(1, int(spill.max(initial=0)) + 1):
            touched = spill >= np.uint64(extra)
            self._add(first[touched] + np.uint64(extra), weights[touched] if weights is not None else None)

    # --- the metadata (everything but L2 entries) ---------------------------------

    def _l1_walk(self) -> Iterator[tuple[L1Table, str]]:
        """The L1 tables QEMU walks, with their kind (snapshots' misaligned or
        too large tables are skipped, as QEMU does, and count corruptions)."""
        image = self.image
        assert image.l1 is not None  # the pass starts only on a readable image, which has one
        yield image.l1, "active-l1"
        if image.header.has_data_file and image.header.nb_snapshots:
            self.corruptions += 1  # "ERROR %d snapshots in image with data file"
        for table in image.snapshot_l1_tables:
            if table.file_offset % self.cluster_size or table.expected_entries > spec.MAX_L1_SIZE // spec.L1_ENTRY_SIZE:
                self.corruptions += 1
                continue
            yield table, "inactive-l1"

    def _l1_groups(self) -> Iterator[tuple[L1Table, str, int]]:
        """``_l1_walk`` with runs of snapshots that name one L1 table (one
        shared array, see the reader) taken together: the table, its kind and
        how many tables it stands for.  Only consecutive copies form a group
        and only while no count can saturate, so that counting it once,
        ``copies`` times, reports exactly what counting each in turn would;
        a table or L2 table outside the file is never grouped."""
        self._copies: dict[int, list[L1Table]] = {}
        outside: dict[tuple[int, int], bool] = {}  # per distinct table

        def key(table: L1Table) -> tuple[int, int]:
            return id(table.entries), table.expected_entries

        def groupable(table: L1Table) -> bool:
            if table.active:
                return False
            if key(table) not in outside:
                size = table.expected_entries * spec.L1_ENTRY_SIZE
                offsets = table.entries & np.uint64(spec.L1E_OFFSET_MASK)
                outside[key(table)] = bool(
                    self._outside(np.array([table.file_offset], np.uint64), max(size, 1)).any()
                    or self._outside(offsets, self.cluster_size).any()
                )
            return not outside[key(table)]

        walk = list(self._l1_walk())
        start = 0
        while start < len(walk):
            table, kind = walk[start]
            end = start + 1
            if groupable(table):
                while end < len(walk) and walk[end][1] == kind and key(walk[end][0]) == key(table):
                    end += 1
            run = [member for member, _ in walk[start:end]]
            together = min(len(run), self._unsaturated_copies(table)) if len(run) > 1 else 0
            if together > 1:
                self._copies[id(table)] = run[:together]
                yield table, kind, together
            else:
                together = 0
            for member in run[together:]:
                yield member, kind, 1
            start = end

    def _unsaturated_copies(self, table: L1Table) -> int:
        """How many copies of ``table`` can be counted at once with no
        refcount passing the maximum (its own clusters and its L2 tables')."""
        size = table.expected_entries * spec.L1_ENTRY_SIZE
        first = table.file_offset >> self.cluster_bits
        last = (table.file_offset + max(size, 1) - 1) >> self.cluster_bits
        offsets = table.entries[table.entries != 0] & np.uint64(spec.L1E_OFFSET_MASK)
        clusters = np.concatenate(
            [np.arange(first, last + 1, dtype=np.int64), (offsets >> np.uint64(self.cluster_bits)).astype(np.int64)]
        )
        clusters = np.concatenate([clusters, clusters + 1])  # misaligned tables spill into the next cluster
        repeats = arrays.counts(clusters)
        inside = clusters[clusters < len(self.computed)]
        current = int(self.computed[inside].max(initial=0))
        return max(0, (self.refcount_max - current) // int(repeats.max(initial=1)))

    def _metadata_pass(self) -> None:
        image, header = self.image, self.image.header
        self.region("header", "header", 0, self.cluster_size)
        self.extents.add("header", "header", 0, self.cluster_size)
        l2_tables: dict[str, list[np.ndarray]] = {"active-l2": [], "inactive-l2": []}
        for table, kind, copies in self._l1_groups():
            size = table.expected_entries * spec.L1_ENTRY_SIZE
            self.region(kind, table.path, table.file_offset, size, copies)
            for copy in copies_of(table, copies, self._copies):
                self.extents.add(kind, copy.path, copy.file_offset, size)
            offsets = table.entries[table.entries != 0] & np.uint64(spec.L1E_OFFSET_MASK)
            self.corruptions += copies * (
                len(predicates.l1_reserved(table)) + len(predicates.l1_misaligned(table, self.cluster_size))
            )
            l2_kind = "active-l2" if table.active else "inactive-l2"
            self.clusters_of(l2_kind, "l2", offsets, self.cluster_size, np.full(len(offsets), copies, np.int64))
            # An entry with flag bits and a zero offset makes QEMU's check
            # read cluster 0 as an L2 table: the table lands on the header.
            l2_tables[l2_kind].append(offsets)
            if table.active:
                stored, readable = self.stored.of(offsets >> np.uint64(self.cluster_bits))
                self.corruptions += len(
                    predicates.copied_mismatch_l1(
                        attrs.evolve(table, entries=table.entries[table.entries != 0]), stored, readable
                    )
                )
        active = arrays.unique(np.concatenate(l2_tables["active-l2"] or [np.empty(0, np.uint64)]))
        inactive = arrays.setdiff(np.concatenate(l2_tables["inactive-l2"] or [np.empty(0, np.uint64)]), active)
        self.extents.set_l2_tables(active, inactive)
        if image.snapshots is not None:
            entries = image.snapshots.entries
            # QEMU reads nb_snapshots entries and gets zeros past the end of
            # the file: each missing entry is a bare 40-byte, incomplete one.
            missing = max(min(header.nb_snapshots, spec.MAX_SNAPSHOTS) - len(entries), 0)
            size = sum(entry.size for entry in entries) + missing * spec.SNAPSHOT_HEADER_SIZE
            if image.snapshots.too_big is not None:  # QEMU refuses it: what it walked
                missing, size = 0, image.snapshots.too_big_length
            self.region("snapshot-table", "snapshots", image.snapshots.file_offset, size)
            self.extents.add("snapshot-table", "snapshots", image.snapshots.file_offset, size)
            if header.version >= 3:  # "ERROR snapshot table entry N is incomplete"
                incomplete = sum(e.extra_data_size < spec.MIN_V3_SNAPSHOT_EXTRA_DATA for e in entries)
                self.corruptions += incomplete + missing
        reftable = image.refcount_table
        assert reftable is not None  # the pass starts only on a readable image, which has one
        size = reftable.expected_entries * spec.REFTABLE_ENTRY_SIZE
        self.region("reftable", "reftable", reftable.file_offset, size)
        self.extents.add("reftable", "reftable", reftable.file_offset, size)
        if image.encryption is not None and image.encryption.length:
            area = image.encryption
            self.region("fde-area", "encryption", area.file_offset, area.length)
            self.extents.add("fde-area", "encryption", area.file_offset, area.length)
        self._bitmaps()
        # One extent per usable entry, in table order; entries that name one
        # block share its extent (a hostile table names one block 2^18 times).
        entries = reftable.entries[reftable.entries != 0]
        offsets = entries & np.uint64(spec.REFT_OFFSET_MASK)
        usable = ((entries & np.uint64(spec.REFT_RESERVED_MASK)) == 0) & (
            (offsets & np.uint64(self.cluster_size - 1)) == 0
        )
        blocks, which = np.unique(offsets[usable], return_inverse=True)
        extents = [Extent("refblock", f"refblock@{offset:#x}", offset, self.cluster_size) for offset in blocks.tolist()]
        self.extents.extend([extents[i] for i in which.reshape(-1).tolist()])
        self.extents.index(cluster_count(image))

    def _bitmaps(self) -> None:
        """qcow2_check_bitmaps_refcounts: only for a bitmaps extension QEMU
        loads (autoclear bit 0 set, version 3)."""
        image = self.image
        ext = image.bitmaps
        if ext is None or not image.header.autoclear_features & spec.AUTOCLEAR_BITMAPS or ext.nb_bitmaps == 0:
            return
        self.region("bitmap-directory", "bitmap-directory", ext.bitmap_directory_offset, ext.bitmap_directory_size)
        self.extents.add("bitmap-directory", "bitmap-directory", ext.bitmap_directory_offset, ext.bitmap_directory_size)
        # Bitmaps naming one table share its array (the reader reads it
        # once): its entries are judged once, and counted for each bitmap.
        judged: dict[int, tuple[np.ndarray, int]] = {}
        for table in image.bitmap_tables:
            size = table.expected_entries * spec.BITMAP_TABLE_ENTRY_SIZE
            self.region("bitmap-table", table.path, table.file_offset, size)
            self.extents.add("bitmap-table", table.path, table.file_offset, size)
            if id(table.entries) not in judged:
                judged[id(table.entries)] = self._bitmap_data(table.entries)
            data, bad = judged[id(table.entries)]
            self.corruptions += bad
            if not len(data):
                continue
            self.clusters_of("bitmap-data", f"{table.path}.data", data, self.cluster_size, np.ones(len(data), np.int64))
            for offset in data.tolist():
                self.extents.add("bitmap-data", f"{table.path}.data@{offset:#x}", offset, self.cluster_size)

    def _bitmap_data(self, entries: np.ndarray) -> tuple[np.ndarray, int]:
        """The data cluster offsets QEMU counts for a bitmap table, and how
        many of its entries are corrupt (reserved bits, all-ones with an
        offset, a misaligned offset)."""
        offsets = entries & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)
        bad = ((entries & np.uint64(spec.BME_TABLE_ENTRY_RESERVED_MASK)) != 0) | (
            (offsets != 0)
            & (
                ((entries & np.uint64(spec.BME_TABLE_ENTRY_FLAG_ALL_ONES)) != 0)
                | ((offsets & np.uint64(self.cluster_size - 1)) != 0)
            )
        )
        return offsets[~bad & (offsets != 0)], int(bad.sum())

    def _refblocks(self) -> None:
        """check_refblocks: count each refcount block last, as QEMU does, and
        object to entries it cannot use or blocks referenced more than once.

        QEMU walks the table entry by entry: each usable entry adds one
        reference to its block's cluster, then reads that cluster's count.
        The walk is replayed per distinct block (a hostile table can name one
        block 2^18 times): the k-th entry naming a block sees the block's
        count before the walk plus k, saturated at refcount_max, and each
        increment past the maximum is an overflow."""
        assert self.image.refcount_table is not None  # as in _metadata_pass
        entries = self.image.refcount_table.entries
        indices = np.flatnonzero(entries)
        values = entries[indices]
        offsets = values & np.uint64(spec.REFT_OFFSET_MASK)
        reserved = (values & np.uint64(spec.REFT_RESERVED_MASK)) != 0
        misaligned = ~reserved & ((offsets & np.uint64(self.cluster_size - 1)) != 0)
        clusters = offsets >> np.uint64(self.cluster_bits)
        outside = ~reserved & ~misaligned & (clusters >= np.uint64(self.compared))
        usable = ~(reserved | misaligned | outside)
        # Each usable entry's rank among the entries naming its block (1 for
        # the first in table order), and the block's count before the walk.
        blocks = clusters[usable].astype(np.int64)
        distinct, inverse = np.unique(blocks, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(distinct)))])[:-1]
        rank = np.empty(len(blocks), np.int64)
        rank[order] = np.arange(len(blocks), dtype=np.int64) - starts[inverse[order]] + 1
        if len(distinct) and int(distinct[-1]) >= len(self.computed):
            self._grow(int(distinct[-1]) + 1)
        # Counts are far below 2^63 (one per reference): int64 holds them, and
        # a 64-bit refcount_max is never reached.
        top = min(self.refcount_max, np.iinfo(np.int64).max)
        before = self.computed[distinct].astype(np.int64)[inverse] if len(blocks) else np.empty(0, np.int64)
        seen = np.minimum(before + rank, top)
        over = before + rank > top  # this entry's increment is lost
        if len(distinct):
            final = np.minimum(self.computed[distinct].astype(np.int64) + np.bincount(inverse), top)
            self._hold(int(final.max()))
            self.computed[distinct] = final.astype(self.computed.dtype)
        lost = int(over.sum())
        self.overflow_count += lost
        self.corruptions += lost
        if lost and len(self.overflows) < MAX_EVENTS:
            overflowing = offsets[usable][over][: MAX_EVENTS - len(self.overflows)]
            self.overflows += overflowing.astype(np.int64).tolist()
        # The issues in table order: an unusable entry, or a block whose
        # count is not 1 once the entry is counted.
        kinds = np.where(reserved, 0, np.where(misaligned, 1, 2))
        counts = np.ones(len(indices), np.int64)
        counts[usable] = seen
        flagged = ~usable | (counts != 1)
        names = ("reserved", "misaligned", "outside")
        for index, offset, kind, count, ok in zip(
            indices[flagged].tolist(),
            offsets[flagged].tolist(),
            kinds[flagged].tolist(),
            counts[flagged].tolist(),
            usable[flagged].tolist(),
            strict=True,
        ):
            if ok:
                self.refblock_issues.append(RefcountIssue(index, offset, "refcount", count))
            else:
                self.refblock_issues.append(RefcountIssue(index, offset, names[kind]))
        self.corruptions += int(flagged.sum())

    # --- the L2 pass --------------------------------------------------------------

    def add_batch(self, batch: L2Tables) -> None:
        """Count the data and compressed clusters of a batch of L2 tables."""
        tables = len(batch.offsets)
        refs = batch.refs if batch.refs is not None else np.ones(tables, np.int64)
        active_refs = batch.active_refs if batch.active_refs is not None else refs
        # The usual case: every table is referenced once, from the active L1.
        single = bool((refs == 1).all() and (active_refs == 1).all())
        columns = batch.entries.shape[1]
        shift = columns.bit_length() - 1  # entries per table is a power of two
        cs = self.cluster_size

        self.corruptions += (
            self._per_row(predicates.l2_reserved(batch), shift, refs)
            + self._per_row(predicates.l2_misaligned(batch, cs, spec.CLUSTER_NORMAL), shift, refs)
            + self._per_row(predicates.l2_misaligned(batch, cs, spec.CLUSTER_ZERO_ALLOC), shift, refs)
        )

        flat, offsets = predicates.allocated_entries(batch)
        rows = None if single else flat >> shift
        if not batch.data_file:
            aligned = not len(predicates.misaligned_offsets(batch, cs))
            runs = predicates.allocated_runs(batch, self.cluster_bits)
            self._data(batch, flat, offsets, runs, None if rows is None else refs[rows], aligned)
        bad = predicates.copied_mismatch_active(batch, self.stored, self.cluster_bits)
        self.corruptions += len(bad) if single else int(active_refs[bad >> shift].sum())
        breaks = predicates.allocated_breaks(batch, cs)
        self._fragmentation(flat, breaks, shift, None if rows is None else active_refs[rows])

        packed = predicates.compressed_entries(batch)
        if len(packed):
            entries = batch.entries.ravel()[packed]
            copied = (entries & np.uint64(spec.OFLAG_COPIED)) != 0
            self.corruptions += int(refs[packed >> shift][copied].sum())
            # QEMU stops at a compressed entry with a data file or with a
            # subcluster bitmap: a corruption, and no reference or figures.
            broken = np.full(len(packed), batch.data_file)
            if batch.bitmaps is not None:
                broken |= batch.bitmaps.ravel()[packed] != 0
            self.corruptions += int(refs[packed >> shift][broken].sum())
            packed, entries = packed[~broken], entries[~broken]
            prow = packed >> shift
            weights = active_refs[prow]
            for figure in ("allocated-clusters", "compressed-clusters", "fragmented-clusters"):
                self.stats[figure] += int(weights.sum())
            coffset, csize = predicates.compressed_ranges(entries, self.cluster_bits)
            self._compressed(coffset, csize, refs[prow])
        if batch.bitmaps is not None:
            self.corruptions += self._extl2_corruptions(batch, refs, shift)

    def _data(
        self,
        batch: L2Tables,
        flat: np.ndarray,
        offsets: np.ndarray,
        runs: tuple[list[int], list[int]] | None,
        weights: np.ndarray | None,
        aligned: bool,
    ) -> None:
        """References from NORMAL and ZERO_ALLOC entries, and data clusters
        that land on metadata (``runs``: ``predicates.allocated_runs``)."""
        if batch.max_host_offset >= self.file_size and len(offsets) and int(offsets.max()) >= self.file_size:
            outside = self._outside(offsets, self.cluster_size)
            for index in np.flatnonzero(outside)[: MAX_EVENTS - len(self.exceeding)].tolist():
                row, column = divmod(int(flat[index]), batch.entries.shape[1])
                self.exceeding.append(
                    Extent("data", batch.entry_path(row, column), int(offsets[index]), self.cluster_size)
                )
            lost = int(weights[outside].sum()) if weights is not None else int(outside.sum())
            self.exceeding_count += lost
            self.corruptions += lost
            keep = ~outside
            flat, offsets, runs = flat[keep], offsets[keep], None
            weights = weights[keep] if weights is not None else None
        if runs is not None and weights is None and aligned:
            # A few runs of consecutive clusters (a preallocated or freshly
            # written image): each run is one in-place slice addition.
            for first, count in zip(*runs):
                self._add_range(first, first + count, 1)
        else:
            clusters = offsets >> np.uint64(self.cluster_bits)
            self._add(clusters, weights)
            if not aligned:  # a misaligned cluster also touches the next one
                spill = (offsets & np.uint64(self.cluster_size - 1)) != 0
                self._add(clusters[spill] + np.uint64(1), weights[spill] if weights is not None else None)
        self.extents.data_hits(batch, flat, offsets, runs)

    @staticmethod
    def _per_row(flat: np.ndarray, shift: int, refs: np.ndarray) -> int:
        """How often QEMU meets the entries at ``flat``: once per reference
        to their table."""
        return int(refs[flat >> shift].sum()) if len(flat) else 0

    def _compressed(self, coffset: np.ndarray, csize: np.ndarray, weights: np.ndarray) -> None:
        """Each compressed cluster references every host cluster its sectors
        span (§1.6); one that ends a cluster or more past EOF is a corruption."""
        outside = coffset + csize >= np.uint64(self.file_size + self.cluster_size)
        for index in np.flatnonzero(outside)[: MAX_EVENTS - len(self.exceeding)].tolist():
            self.exceeding.append(Extent("compressed-data", "compressed", int(coffset[index]), int(csize[index])))
        lost = int(weights[outside].sum())
        self.exceeding_count += lost
        self.corruptions += lost
        coffset, csize, weights = coffset[~outside], csize[~outside], weights[~outside]
        first = coffset >> np.uint64(self.cluster_bits)
        spill = ((coffset & np.uint64(self.cluster_size - 1)) + csize - np.uint64(1)) >> np.uint64(self.cluster_bits)
        for extra in range(int(spill.max(initial=0)) + 1):
            touched = spill >= np.uint64(extra)
            self._add(first[touched] + np.uint64(extra), weights[touched])
            self.compressed_hosts.append(arrays.unique(first[touched] + np.uint64(extra)).astype(np.int64))

    def _extl2_corruptions(self, batch: L2Tables, refs: np.ndarray, shift: int) -> int:
        """check_refcounts_l2's subcluster checks: allocated and zero both set
        for a NORMAL cluster, alloc bits on an UNALLOCATED one."""
        bitmaps = batch.bitmaps
        assert bitmaps is not None  # called for extended L2 batches only
        normal = batch.host_offsets != 0
        plain = ~predicates.compressed(batch)
        both = normal & plain & (((bitmaps >> np.uint64(32)) & bitmaps) != 0)
        unalloc = ~normal & plain & ((bitmaps & np.uint64(spec.SUBCLUSTER_ALLOC_MASK)) != 0)
        if batch.data_file:  # offset 0 with COPIED is a NORMAL cluster
            unalloc &= (batch.entries & np.uint64(spec.OFLAG_COPIED)) == 0
        return self._per_row(np.flatnonzero(both | unalloc), shift, refs)

    def _fragmentation(self, flat: np.ndarray, breaks: np.ndarray, shift: int, weights: np.ndarray | None) -> None:
        """allocated/fragmented clusters of the active view: an allocated
        cluster is fragmented when it does not follow the previous allocated
        one of the same L2 table (``weights``: active references, None for one)."""
        self.stats["allocated-clusters"] += len(flat) if weights is None else int(weights.sum())
        # A break between the last entry of one table and the first of the
        # next is not fragmentation.
        jumps = breaks[(flat[breaks] >> shift) == (flat[breaks - 1] >> shift)]
        self.stats["fragmented-clusters"] += len(jumps) if weights is None else int(weights[jumps].sum())

    # --- result -------------------------------------------------------------------

    def finish(self) -> RefcountCheck:
        """Count the refcount blocks, compare, and return the check."""
        self._refblocks()
        compared = self.compared
        last_counted = _last_nonzero(self._counted, len(self.computed))
        if last_counted >= compared:
            compared = last_counted + 1  # QEMU grows nb_clusters
        # Past the last cluster that is stored or referenced both are 0:
        # only that span is compared, a chunk at a time (no full-size temporary).
        span = min(compared, max(self.stored.length, len(self.computed)))
        readable = self.stored.readable_mask if self.stored.unreadable is not None else None
        clusters, stored_values, computed_values = [np.empty(0, np.int64)], [], []
        for start in range(0, span, CHUNK):
            stop = min(span, start + CHUNK)
            stored, computed = self.stored.values(start, stop), self._counted(start, stop)
            differ = np.flatnonzero(stored != computed)
            if readable is not None:
                differ = differ[readable(start, stop)[differ]]
            clusters.append(differ + start)
            stored_values.append(stored[differ])
            computed_values.append(computed[differ])
        mismatches = (
            np.concatenate(clusters),
            np.concatenate(stored_values or [np.empty(0, self.stored.dtype)]),
            np.concatenate(computed_values or [np.empty(0, self.computed.dtype)]),
        )
        self.check_errors += self.stored.unreadable_count(compared)
        low = int(np.count_nonzero(mismatches[1] < mismatches[2]))
        self.corruptions += low
        leaks = len(mismatches[0]) - low
        last_used = max(
            _last_nonzero(self.stored.values, span, readable),
            _last_nonzero(self._counted, span, readable),
        )
        header = self.image.header
        extents = self.extents
        overlaps = extents.overlaps() + extents.data_overlaps
        stats = {
            "image-end-offset": (last_used + 1) * self.cluster_size,
            # QEMU counts whole 512-byte sectors of the virtual size.
            "total-clusters": -(-spec.disk_length(header.size) // self.cluster_size),
            **self.stats,
            "leaks": leaks,
            "corruptions": self.corruptions,
            "check-errors": self.check_errors,
        }
        shared: tuple[int, ...] = ()
        if not header.nb_snapshots:  # with snapshots, sharing data is what they do
            shared = self._shared_data(span)
        return RefcountCheck(
            self.cluster_size,
            self.refcount_max,
            self.computed,
            self.stored,
            compared,
            tuple(self.exceeding),
            self.exceeding_count,
            tuple(self.overflows),
            self.overflow_count,
            tuple(self.refblock_issues),
            tuple(overlaps),
            extents.overlap_count,
            shared,
            tuple(extents.metadata),
            stats,
            mismatches=mismatches,
        )

    def _counted(self, start: int, stop: int) -> np.ndarray:
        """The rebuilt counts of clusters ``start`` to ``stop - 1`` (0 past the array)."""
        return _padded(self.computed[start:stop], max(stop - start, 0))

    def _shared_data(self, span: int) -> tuple[int, ...]:
        """Clusters referenced twice or more that hold neither metadata nor
        compressed data (data clusters mapped by two L2 entries), the first
        ``MAX_EVENTS`` of them."""
        legit = np.concatenate([self.extents.meta_clusters, *self.compressed_hosts]).astype(np.int64)
        found: list[np.ndarray] = []
        total = 0
        for start in range(0, min(span, len(self.computed)), CHUNK):
            candidates = np.flatnonzero(self.computed[start : start + CHUNK] >= 2) + start
            if len(candidates):
                candidates = arrays.setdiff(candidates, legit)
                found.append(candidates)
                total += len(candidates)
                if total >= MAX_EVENTS:
                    break
        return tuple(np.concatenate(found)[:MAX_EVENTS].tolist()) if found else ()


def copies_of(table: L1Table, copies: int, groups: dict[int, list[L1Table]]) -> list[L1Table]:
    """The tables a group stands for (the table itself when alone)."""
    return groups.get(id(table), [table]) if copies > 1 else [table]


def _padded(values: np.ndarray, length: int) -> np.ndarray:
    """``values`` with zeros appended up to ``length`` (itself when long enough)."""
    if len(values) >= length:
        return values
    return np.concatenate([values, np.zeros(length - len(values), values.dtype)])


def _last_nonzero(
    values: Callable[[int, int], np.ndarray],
    length: int,
    readable: Callable[[int, int], np.ndarray] | None = None,
) -> int:
    """Index of the last non-zero (and readable) value of the first
    ``length`` given by ``values(start, stop)``, -1 if none; scans from the
    end a chunk at a time so that no full-size temporary is made."""
    for end in range(length, 0, -CHUNK):
        start = max(0, end - CHUNK)
        mask = values(start, end) != 0
        if readable is not None:
            mask &= readable(start, end)
        if mask.any():
            return start + int(np.flatnonzero(mask)[-1])
    return -1
