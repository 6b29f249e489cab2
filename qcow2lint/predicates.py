"""QEMU's per-entry checks as vectorised predicates.

Each function returns the flat indices of the entries of a table or batch
that fail one check of ``qemu-img check`` (``check_refcounts_l1``,
``check_refcounts_l2``, ``check_oflag_copied``, spec, "Cluster mapping").
Rules use them to report findings and the analysis uses them to count
corruptions exactly as QEMU does, so the two can never disagree.  What a
predicate finds in a batch is computed once, kept in the batch's memo
(:attr:`qcow2lint.records.L2Tables.memo`) and dropped with the batch.
"""

from __future__ import annotations

import numpy as np

from qcow2lint import spec
from qcow2lint.records import L1Table, L2Tables
from qcow2lint.results import StoredRefcounts
from qcow2lint.spec import compressed_ranges

__all__ = [
    "allocated",
    "allocated_entries",
    "all_allocated",
    "allocated_breaks",
    "allocated_runs",
    "at_allocated",
    "compressed",
    "compressed_entries",
    "compressed_ranges",
    "copied_mismatch_active",
    "copied_mismatch_l1",
    "l1_misaligned",
    "l1_reserved",
    "l2_misaligned",
    "l2_reserved",
    "misaligned_offsets",
]


def _u64(value: int) -> np.uint64:
    return np.uint64(value)


#: Below this many runs of consecutive clusters per batch, per-run slices
#: beat per-entry gathers (``allocated_runs``).
MAX_SLICED_RUNS = 64

#: No entry (what a predicate finds in a batch its summary rules out).
_NONE = np.empty(0, np.intp)
_NONE.flags.writeable = False


def l1_reserved(table: L1Table) -> np.ndarray:
    """L1 entries with reserved bits set."""
    return np.flatnonzero(table.entries & _u64(spec.L1E_RESERVED_MASK))


def l1_misaligned(table: L1Table, cluster_size: int) -> np.ndarray:
    """L1 entries whose L2 table offset is not cluster-aligned."""
    return np.flatnonzero(table.entries & _u64(spec.L1E_OFFSET_MASK) & _u64(cluster_size - 1))


def l2_reserved(batch: L2Tables) -> np.ndarray:
    """Uncompressed L2 entries with reserved bits set (also unallocated ones)."""

    def compute() -> np.ndarray:
        if not batch.may_have(spec.L2E_STD_RESERVED_MASK):
            return _NONE
        candidates = np.flatnonzero(batch.entries & _u64(spec.L2E_STD_RESERVED_MASK))
        return candidates[batch.cluster_types(candidates) != spec.CLUSTER_COMPRESSED]

    return batch.memo.once("l2_reserved", compute)


def l2_misaligned(batch: L2Tables, cluster_size: int, cluster_type: int) -> np.ndarray:
    """Entries of ``cluster_type`` (NORMAL or ZERO_ALLOC) with a misaligned host offset."""
    candidates = misaligned_offsets(batch, cluster_size)
    return candidates[batch.cluster_types(candidates) == cluster_type]


def misaligned_offsets(batch: L2Tables, cluster_size: int) -> np.ndarray:
    """Entries (of any type) whose host offset field is not cluster-aligned."""

    def compute() -> np.ndarray:
        if not batch.may_have(spec.L2E_OFFSET_MASK & (cluster_size - 1)):
            return _NONE
        return np.flatnonzero(batch.host_offsets & _u64(cluster_size - 1))

    return batch.memo.once("misaligned", compute)


def allocated(batch: L2Tables) -> np.ndarray:
    """Boolean mask of NORMAL and ZERO_ALLOC entries: those that own a host
    cluster (QEMU counts a reference for them unless there is a data file,
    where offset 0 with COPIED is a NORMAL cluster at host offset 0)."""

    def compute() -> np.ndarray:
        owned = batch.host_offsets != 0
        if batch.data_file:
            copied = (batch.entries & _u64(spec.OFLAG_COPIED)) != 0
            if not batch.extended:
                copied &= (batch.entries & _u64(spec.OFLAG_ZERO)) == 0
            owned |= copied
        if batch.may_have(spec.OFLAG_COMPRESSED):
            owned &= ~compressed(batch)
        return owned

    return batch.memo.once("allocated", compute)


def allocated_entries(batch: L2Tables) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the allocated entries and their host offsets."""

    def compute() -> tuple[np.ndarray, np.ndarray]:
        mask = allocated(batch)
        if all_allocated(batch):  # a preallocated batch: no index to gather through
            return np.arange(mask.size), batch.host_offsets.ravel()
        flat = np.flatnonzero(mask)
        return flat, batch.host_offsets.ravel()[flat]

    return batch.memo.once("allocated_entries", compute)


def all_allocated(batch: L2Tables) -> bool:
    """Whether every entry of the batch is allocated."""
    return batch.memo.once("all_allocated", lambda: bool(allocated(batch).all()))


def at_allocated(batch: L2Tables, values: np.ndarray) -> np.ndarray:
    """``values`` (one per entry of the batch) at the allocated entries, in
    the order of ``allocated_entries``."""
    return values.ravel() if all_allocated(batch) else values.ravel()[allocated_entries(batch)[0]]


def allocated_breaks(batch: L2Tables, cluster_size: int) -> np.ndarray:
    """Where the allocated entries (in the order of ``allocated_entries``)
    stop following each other in the file: the positions ``i`` whose host
    offset is not the previous one's plus a cluster.  Between two breaks the
    entries map a run of consecutive host clusters (qemu-img check counts
    each break within a table as fragmentation); a preallocated or freshly
    written image has a handful per batch, so the analysis works per run."""

    def compute() -> np.ndarray:
        offsets = allocated_entries(batch)[1]
        return np.flatnonzero(np.diff(offsets) != _u64(cluster_size)) + 1

    return batch.memo.once("allocated_breaks", compute)


def compressed(batch: L2Tables) -> np.ndarray:
    """Boolean mask of compressed entries."""

    def compute() -> np.ndarray:
        if not batch.may_have(spec.OFLAG_COMPRESSED):
            return np.zeros(batch.entries.shape, bool)
        return (batch.entries & _u64(spec.OFLAG_COMPRESSED)) != 0

    return batch.memo.once("compressed", compute)


def compressed_entries(batch: L2Tables) -> np.ndarray:
    """Flat indices of the compressed entries."""
    return batch.memo.once(
        "compressed_entries",
        lambda: np.flatnonzero(compressed(batch)) if batch.may_have(spec.OFLAG_COMPRESSED) else _NONE,
    )


def copied_mismatch_l1(table: L1Table, stored: np.ndarray, readable: np.ndarray) -> np.ndarray:
    """Active L1 entries whose COPIED flag disagrees with "the L2 table's
    stored refcount is 1" (``check_oflag_copied``).  ``stored``/``readable``
    give each entry's L2 cluster refcount and whether it could be read."""
    offsets = table.entries & _u64(spec.L1E_OFFSET_MASK)
    copied = (table.entries & _u64(spec.OFLAG_COPIED)) != 0
    return np.flatnonzero((offsets != 0) & readable & ((stored == 1) != copied))


def copied_mismatch_active(batch: L2Tables, stored_refcounts: StoredRefcounts, cluster_bits: int) -> np.ndarray:
    """check_oflag_copied over a batch: the allocated entries of tables the
    active L1 references whose COPIED flag disagrees with the stored
    refcount of their data cluster.  Computed once per batch for the rule and the analysis."""

    def compute() -> np.ndarray:
        flat, offsets = allocated_entries(batch)
        entries = at_allocated(batch, batch.entries)
        every_copied = len(entries) and bool(np.bitwise_and.reduce(entries) >> _u64(63))
        keep = None
        shift = batch.entries.shape[1].bit_length() - 1
        if batch.active_refs is not None and not (batch.active_refs > 0).all():
            keep = batch.active_refs[flat >> shift] > 0
        if len(batch.offsets) and batch.offsets[0] == 0:
            # An L1 entry with flag bits and a zero offset: QEMU's check walks
            # cluster 0 as an L2 table, but check_oflag_copied skips entries
            # whose offset is 0, so those entries are never compared.
            first = (flat >> shift) != 0
            keep = first if keep is None else keep & first
        if batch.data_file:  # every data file cluster has refcount 1
            if every_copied:
                return _NONE
            wrong = (entries >> _u64(63)) == 0
        else:
            stored, readable = _stored_at(batch, stored_refcounts, offsets, cluster_bits)
            is_one = stored == 1
            if every_copied and is_one.all():  # the usual case: nothing to compare entry by entry
                return _NONE
            wrong = is_one != ((entries >> _u64(63)) != 0)
            if readable is not None:
                wrong &= readable
        if keep is not None:
            wrong &= keep
        return flat[wrong]

    return batch.memo.once("copied_mismatch", compute)


def _stored_at(
    batch: L2Tables, stored_refcounts: StoredRefcounts, offsets: np.ndarray, cluster_bits: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The stored refcounts of the allocated entries' host clusters, and
    their readability (None: all readable); few runs of consecutive clusters
    are read as slices, not gathered one by one."""
    runs = allocated_runs(batch, cluster_bits)
    if runs is not None and stored_refcounts.unreadable is None:
        parts = [stored_refcounts.values(first, first + count) for first, count in zip(*runs)]
        return (np.concatenate(parts) if parts else np.empty(0, stored_refcounts.dtype)), None
    return stored_refcounts.of(offsets >> _u64(cluster_bits))


def allocated_runs(batch: L2Tables, cluster_bits: int) -> tuple[list[int], list[int]] | None:
    """The runs of consecutive host clusters that the allocated entries map
    (cut at ``allocated_breaks``), as the first cluster and the length of
    each; None when there are ``MAX_SLICED_RUNS`` or more, where per-entry
    work is cheaper than a slice per run."""

    def compute() -> tuple[list[int], list[int]] | None:
        offsets = allocated_entries(batch)[1]
        breaks = allocated_breaks(batch, 1 << cluster_bits)
        if len(breaks) >= MAX_SLICED_RUNS:
            return None
        if not len(offsets):
            return [], []
        starts = [0, *breaks.tolist()]
        ends = [*starts[1:], len(offsets)]
        first = (offsets[starts] >> _u64(cluster_bits)).tolist()
        return first, [end - start for start, end in zip(starts, ends)]

    return batch.memo.once("allocated_runs", compute)
