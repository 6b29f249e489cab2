"""Job 3 of the refcount analysis: the typed extent map (spec, "Host cluster management").

Every metadata structure the refcount pass counts is also recorded here as
a typed extent; L2 tables are kept as arrays (they can number in the
thousands).  The map finds metadata extents that share a cluster, and data
clusters that land on metadata, with the two structures involved.
"""

from __future__ import annotations

import numpy as np

from qcow2lint.passes.base import MAX_EVENTS
from qcow2lint.records import L2Tables
from qcow2lint.results import Extent, Overlap, extent_runs
from qcow2lint.spec import MAX_MAPPED_EXTENT


class ExtentMap:
    """The metadata extents of one image, and the overlaps found so far."""

    def __init__(self, cluster_bits: int, cluster_size: int) -> None:
        self.cluster_bits = cluster_bits
        self.cluster_size = cluster_size
        self.metadata: list[Extent] = []
        #: Every L2 table offset, the active ones first.
        self.l2_offsets = np.empty(0, np.uint64)
        self.l2_active = 0
        self.data_overlaps: list[Overlap] = []
        self.overlap_count = 0

    def add(self, kind: str, label: str, offset: int, length: int) -> None:
        """Record one metadata extent (empty ones are not structures)."""
        if length > 0:
            self.metadata.append(Extent(kind, label, offset, length))

    def extend(self, extents: list[Extent]) -> None:
        """Record several metadata extents (non-empty ones), in order; the same
        extent object may come many times (one block named by many entries)."""
        self.metadata.extend(extent for extent in extents if extent.length > 0)

    def set_l2_tables(self, active: np.ndarray, inactive: np.ndarray) -> None:
        """The L2 tables of the active L1 and those only snapshots reference."""
        # L2 tables can number in the thousands: kept as arrays, not extents.
        self.l2_offsets = np.concatenate([active, inactive])
        self.l2_active = len(active)

    def owner(self, number: int) -> Extent:
        """The extent ``meta_owners`` names: a metadata extent, or an L2 table."""
        if number < len(self.metadata):
            return self.metadata[number]
        index = number - len(self.metadata)
        offset = int(self.l2_offsets[index])
        kind = "active-l2" if index < self.l2_active else "inactive-l2"
        return Extent(kind, f"l2@{offset:#x}", offset, self.cluster_size)

    def index(self, limit: int) -> None:
        """Sorted cluster indices of every metadata extent, with the extent each
        belongs to (the map that data clusters are checked against), up to
        cluster ``limit`` (the length of the rebuilt refcounts)."""
        inside = (self.l2_offsets >> np.uint64(self.cluster_bits)) <= np.uint64(limit)
        tables = self.l2_offsets[inside]
        owner = len(self.metadata) + np.flatnonzero(inside)
        first = (tables >> np.uint64(self.cluster_bits)).astype(np.int64)
        last = ((tables + np.uint64(self.cluster_size - 1)) >> np.uint64(self.cluster_bits)).astype(np.int64)
        spill = last > first  # a misaligned table also covers the next cluster
        clusters = [first, last[spill]]
        owners = [owner, owner[spill]]
        # Each run of one extent (one refcount block named by many table
        # entries) is measured once, then every cluster of every extent.
        extents, repeats = extent_runs(self.metadata)
        firsts, lasts = [], []
        for extent in extents:
            length = min(extent.length, MAX_MAPPED_EXTENT)
            firsts.append(extent.offset >> self.cluster_bits)
            lasts.append(min((extent.offset + length - 1) >> self.cluster_bits, limit))
        if extents:
            start = np.repeat(np.array(firsts, np.int64), repeats)
            stop = np.repeat(np.array(lasts, np.int64), repeats)
            sizes = np.maximum(stop - start + 1, 0)  # an extent past the limit has none
            ends = np.cumsum(sizes)
            base = np.repeat(start - (ends - sizes), sizes)
            clusters.append(base + np.arange(int(ends[-1]), dtype=np.int64))
            owners.append(np.repeat(np.arange(len(sizes), dtype=np.int64), sizes))
        all_clusters = np.concatenate(clusters) if clusters else np.empty(0, np.int64)
        all_owners = np.concatenate(owners) if owners else np.empty(0, np.int64)
        order = np.argsort(all_clusters, kind="stable")
        self.meta_clusters, self.meta_owners = all_clusters[order], all_owners[order]
        # One bit per cluster (up to the last metadata cluster) answers "is
        # this data cluster metadata?" in a few gathers per batch: 2 MiB for
        # a 1 TiB image of 64 KiB clusters.
        end = int(self.meta_clusters[-1]) + 1 if len(self.meta_clusters) else 0
        self.meta_limit = min(limit, end)
        self.meta_bits = np.zeros(-(-self.meta_limit // 8), np.uint8)
        marked = self.meta_clusters[self.meta_clusters < self.meta_limit]
        np.bitwise_or.at(self.meta_bits, marked >> 3, (0x80 >> (marked & 7)).astype(np.uint8))

    def data_hits(
        self,
        batch: L2Tables,
        flat: np.ndarray,
        offsets: np.ndarray,
        runs: tuple[list[int], list[int]] | None = None,
    ) -> None:
        """Data clusters of a batch (at flat indices ``flat``, host byte
        offsets ``offsets``) that land on metadata.  With ``runs``
        (``predicates.allocated_runs``), only the entries of runs that meet a
        metadata cluster are looked at one by one."""
        candidates = None
        if runs is not None:
            first, counts = np.array(runs[0], np.int64), np.array(runs[1], np.int64)
            meets = np.searchsorted(self.meta_clusters, first, "left") < np.searchsorted(
                self.meta_clusters, first + counts - 1, "right"
            )
            if not meets.any():
                return
            ends = np.cumsum(counts)
            candidates = np.concatenate([np.arange(end - n, end) for end, n in zip(ends[meets], counts[meets])])
        clusters = (offsets if candidates is None else offsets[candidates]) >> np.uint64(self.cluster_bits)
        hits = self._metadata_hits(clusters.view(np.int64))
        if candidates is not None:
            hits = candidates[hits]
        self.overlap_count += len(hits)
        columns = batch.entries.shape[1]
        for hit in hits[: MAX_EVENTS - len(self.data_overlaps)].tolist():
            row, column = divmod(int(flat[hit]), columns)
            cluster = int(offsets[hit]) >> self.cluster_bits
            data = Extent("data", batch.entry_path(row, column), int(offsets[hit]), self.cluster_size)
            position = np.searchsorted(self.meta_clusters, cluster)
            owner = self.owner(int(self.meta_owners[position]))
            self.data_overlaps.append(Overlap(cluster, owner, data))

    def _metadata_hits(self, index: np.ndarray) -> np.ndarray:
        """Positions in ``index`` (cluster indices) of clusters that hold metadata."""
        if not len(index):
            return np.empty(0, np.intp)
        if int(index.max()) >= self.meta_limit:  # past the last metadata cluster: none
            candidates = np.flatnonzero(index < self.meta_limit)
            return candidates[self._metadata_hits(index[candidates])]
        byte = self.meta_bits[index >> 3]
        # Most clusters share no byte of the bitmap with metadata: test the
        # bit only where the byte is set.
        marked = np.flatnonzero(byte)
        bit = (byte[marked] >> (7 - (index[marked] & 7)).astype(np.uint8)) & 1
        return marked[bit != 0]

    def overlaps(self) -> list[Overlap]:
        """Metadata extents that share a cluster (the same L2 table seen from
        two L1 tables is one extent, not an overlap)."""
        found = []
        clusters, owners = self.meta_clusters, self.meta_owners
        same = np.flatnonzero(clusters[1:] == clusters[:-1])
        for index in same[:MAX_EVENTS].tolist():
            first, second = self.owner(int(owners[index])), self.owner(int(owners[index + 1]))
            found.append(Overlap(int(clusters[index]), first, second))
        self.overlap_count += len(same)
        return found
