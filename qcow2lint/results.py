"""What the analyses produce: plain data for rules and the engine.

The whole-image refcount pass (:mod:`qcow2lint.passes`) yields a
:class:`RefcountCheck` (with the stored refcounts, the typed extents and
their overlaps); the ``--deep`` read yields a :class:`DeepStopped` when it
reaches its budget.  These are results, not structures of the file (those
are in :mod:`qcow2lint.records`); they live apart from the passes so that
rules and the reader can name them without loading the analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import attrs
import numpy as np

from qcow2lint import arrays
from qcow2lint.recordtype import Record


@attrs.frozen(repr=False)
class DeepStopped(Record):
    """``--deep`` reached its budget (:data:`qcow2lint.reader.MAX_DEEP_PAYLOADS`,
    :data:`qcow2lint.reader.MAX_DEEP_BYTES`): how much it judged and how
    many compressed entries it left unread."""

    payloads: int
    skipped_entries: int
    file_offset: int = 0
    path: str = "--deep"


# --- The refcount pass (spec, "Host cluster management"; overlaps) -----------


@attrs.frozen(repr=False)
class StoredRefcounts(Record):
    """The refcounts stored on disk, for clusters below ``length``.

    Kept compact, as memory must not grow with two full arrays per cluster:
    one bit per cluster says "refcount 1" (most clusters of an image), and
    only the refcount blocks that hold another non-zero value keep their
    decoded values (``dense``, by refcount table index).  A cluster is
    unreadable when QEMU cannot use its refcount block (a misaligned
    refcount block offset: "Can't get refcount").
    """

    #: Clusters covered: up to the end of the last refcount block read.
    length: int
    #: Refcounts per refcount block.
    per_block: int
    dtype: np.dtype = attrs.field(eq=False)
    #: Bit ``c`` (big-endian within each byte) is set when cluster ``c``'s refcount is 1.
    ones: np.ndarray = attrs.field(eq=False)
    #: The decoded refcounts of each block holding a value other than 0 and 1.
    dense: dict[int, np.ndarray] = attrs.field(eq=False)
    #: Per refcount table index: whether its block is unusable (misaligned);
    #: None when every refcount is readable (the usual case).
    unreadable: np.ndarray | None = attrs.field(eq=False)
    #: Non-zero refcounts of clusters past the compared range (past the end
    #: of the file), as (cluster index, refcount), and how many in all.
    beyond: tuple[tuple[int, int], ...] = ()
    beyond_count: int = 0

    def values(self, start: int, stop: int) -> np.ndarray:
        """The stored refcounts of clusters ``start`` to ``stop - 1`` (0 past
        ``length``, as QEMU reads a missing block)."""
        out = np.zeros(max(stop - start, 0), self.dtype)
        end = min(stop, self.length)
        if start >= end:
            return out
        skip = start & 7
        out[: end - start] = np.unpackbits(self.ones[start >> 3 : (end + 7) >> 3])[skip : skip + end - start]
        if self.dense:
            for block in range(start // self.per_block, (end - 1) // self.per_block + 1):
                if block in self.dense:
                    first = block * self.per_block
                    low, high = max(start, first), min(end, first + self.per_block)
                    out[low - start : high - start] = self.dense[block][low - first : high - first]
        return out

    def of(self, clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Stored refcount and readability of each cluster index (0 and
        readable past ``length``, as QEMU reads a missing block)."""
        index = np.asarray(clusters, np.uint64).view(np.int64)
        inside = np.flatnonzero((index >= 0) & (index < self.length))
        counts = np.zeros(len(index), self.dtype)
        readable = np.ones(len(index), bool)
        if not len(inside):
            return counts, readable
        where = index[inside]
        low, high = int(where.min()), int(where.max())
        if high - low < 8 * len(where) + (1 << 20):  # dense enough: unpack the span, then gather
            counts[inside] = self.values(low, high + 1)[where - low]
        else:
            counts[inside] = (self.ones[where >> 3] >> (7 - (where & 7)).astype(np.uint8)) & 1
            if self.dense:
                blocks = where // self.per_block
                for block in arrays.intersect(blocks, np.fromiter(self.dense, np.int64)).tolist():
                    at = np.flatnonzero(blocks == block)
                    counts[inside[at]] = self.dense[block][where[at] - block * self.per_block]
        if self.unreadable is not None:
            blocks = where // self.per_block
            known = blocks < len(self.unreadable)
            readable[inside[known]] = ~self.unreadable[blocks[known]]
        return counts, readable

    def readable_mask(self, start: int, stop: int) -> np.ndarray:
        """Readability of clusters ``start`` to ``stop - 1``."""
        mask = np.ones(max(stop - start, 0), bool)
        end = min(stop, self.length)
        if self.unreadable is None or start >= end:
            return mask
        first, last = start // self.per_block, (end - 1) // self.per_block
        flags = np.zeros(last - first + 1, bool)
        known = self.unreadable[first : last + 1]
        flags[: len(known)] = known
        skip = start - first * self.per_block
        mask[: end - start] = ~np.repeat(flags, self.per_block)[skip : skip + end - start]
        return mask

    def unreadable_count(self, stop: int) -> int:
        """How many of the clusters below ``stop`` are unreadable."""
        if self.unreadable is None:
            return 0
        blocks = np.flatnonzero(self.unreadable)
        first = blocks * self.per_block
        last = np.minimum(first + self.per_block, min(stop, self.length))
        return int(np.maximum(last - first, 0).sum())


@attrs.frozen(repr=False)
class Extent(Record):
    """One structure in the typed extent map."""

    kind: str
    label: str
    offset: int
    length: int


@attrs.frozen(repr=False)
class Overlap(Record):
    """Two structures that claim the same cluster."""

    cluster: int
    first: Extent
    second: Extent

    @property
    def category(self) -> str:
        """Which rule reports it: "bitmap-data" (bitmap-data-shared), "l2-table"
        (an L2 table placed on another structure: l1-entry-points-to-metadata),
        or "metadata" (metadata-overlap, data landing on metadata included)."""
        kinds = {self.first.kind, self.second.kind}
        if "bitmap-data" in kinds:
            return "bitmap-data"
        if self.second.kind != "data" and kinds & {"active-l2", "inactive-l2"}:
            return "l2-table"
        return "metadata"


@attrs.frozen(repr=False)
class RefcountIssue(Record):
    """A refcount table entry QEMU's check_refblocks objects to."""

    index: int
    offset: int
    kind: str  # "reserved", "misaligned", "outside", "refcount"
    value: int = 0


#: The figures of ``qemu-img check --output=json`` that ``RefcountCheck.stats``
#: holds (a report's ``stats``), in qemu-img's spelling and order.
CHECK_FIGURES = (
    "image-end-offset",
    "total-clusters",
    "allocated-clusters",
    "fragmented-clusters",
    "compressed-clusters",
    "leaks",
    "corruptions",
    "check-errors",
)


@attrs.frozen(repr=False)
class RefcountCheck(Record):
    """The outcome of the whole-image analysis, for rules and statistics."""

    cluster_size: int
    refcount_max: int
    #: References counted per cluster (saturated at refcount_max).
    computed: np.ndarray = attrs.field(eq=False)
    stored: StoredRefcounts = attrs.field(eq=False)
    #: Clusters compared (QEMU's nb_clusters).
    compared: int = 0
    #: References that run a cluster or more past the end of the file.
    exceeding: tuple[Extent, ...] = ()
    exceeding_count: int = 0
    #: Clusters whose count would pass refcount_max, and how often.
    overflows: tuple[int, ...] = ()
    overflow_count: int = 0
    refblock_issues: tuple[RefcountIssue, ...] = ()
    overlaps: tuple[Overlap, ...] = ()
    overlap_count: int = 0
    #: Data clusters mapped by two L2 entries (images without snapshots).
    shared_data: tuple[int, ...] = ()
    metadata: tuple[Extent, ...] = ()
    #: qemu-img check's figures (:data:`CHECK_FIGURES`).
    stats: dict[str, int] = attrs.field(factory=dict, eq=False)
    #: Compared cluster indices where stored and computed differ, with both
    #: values (unreadable refcounts excluded).
    mismatches: tuple[np.ndarray, np.ndarray, np.ndarray] = attrs.field(
        default=(np.empty(0, np.int64), np.empty(0, np.uint8), np.empty(0, np.uint8)), eq=False
    )
    path: ClassVar[str] = "refcounts"
    file_offset: ClassVar[int] = 0


def extent_runs(extents: Sequence[Extent]) -> tuple[list[Extent], np.ndarray]:
    """The runs of one extent object repeated in ``extents`` (refcount table
    entries that name one block share its extent): each run's extent, and
    the run lengths."""
    if not extents:
        return [], np.empty(0, np.int64)
    ids = np.fromiter(map(id, extents), np.uint64, count=len(extents))
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    return [extents[i] for i in starts.tolist()], np.diff(np.append(starts, len(extents)))
