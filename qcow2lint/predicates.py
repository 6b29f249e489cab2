"""QEMU's per-entry checks as vectorised predicates.

Each function returns the flat indices of the entries of a table or batch
that fail one check of ``qemu-img check`` (``check_refcounts_l1``,
``check_refcounts_l2``, ``check_oflag_copied``, spec, "Cluster mapping").
Rules use them to report findings and the analysis uses them to count
corruptions exactly as QEMU does, so the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from qcow2lint import spec
from qcow2lint.records import L1Table, L2Tables, StoredRefcounts
from qcow2lint.spec import compressed_ranges

__all__ = [
    "allocated",
    "allocated_entries",
    "compressed",
    "compressed_ranges",
    "copied_mismatch_active",
    "copied_mismatch_l1",
    "copied_mismatch_l2",
    "l1_misaligned",
    "l1_reserved",
    "l2_misaligned",
    "l2_reserved",
    "misaligned_offsets",
]


def _u64(value: int) -> np.uint64:
    return np.uint64(value)


def _cached(batch: L2Tables, key: str, compute: Callable[[], Any]) -> Any:
    """A predicate computed once per batch, shared by rules and the analysis."""
    cache = batch._cache  # noqa: SLF001 - the batch's own memo
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def l1_reserved(table: L1Table) -> np.ndarray:
    """L1 entries with reserved bits set."""
    return np.flatnonzero(table.entries & _u64(spec.L1E_RESERVED_MASK))


def l1_misaligned(table: L1Table, cluster_size: int) -> np.ndarray:
    """L1 entries whose L2 table offset is not cluster-aligned."""
    return np.flatnonzero(table.entries & _u64(spec.L1E_OFFSET_MASK) & _u64(cluster_size - 1))


def l2_reserved(batch: L2Tables) -> np.ndarray:
    """Uncompressed L2 entries with reserved bits set (also unallocated ones)."""

    def compute() -> np.ndarray:
        candidates = np.flatnonzero(batch.entries & _u64(spec.L2E_STD_RESERVED_MASK))
        return candidates[batch.cluster_types(candidates) != spec.CLUSTER_COMPRESSED]

    return _cached(batch, "l2_reserved", compute)


def l2_misaligned(batch: L2Tables, cluster_size: int, cluster_type: int) -> np.ndarray:
    """Entries of ``cluster_type`` (NORMAL or ZERO_ALLOC) with a misaligned host offset."""
    candidates = misaligned_offsets(batch, cluster_size)
    return candidates[batch.cluster_types(candidates) == cluster_type]


def misaligned_offsets(batch: L2Tables, cluster_size: int) -> np.ndarray:
    """Entries (of any type) whose host offset field is not cluster-aligned."""
    return _cached(batch, "misaligned", lambda: np.flatnonzero(batch.host_offsets & _u64(cluster_size - 1)))


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
        return owned & ~compressed(batch)

    return _cached(batch, "allocated", compute)


def allocated_entries(batch: L2Tables) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of the allocated entries and their host offsets."""

    def compute() -> tuple[np.ndarray, np.ndarray]:
        flat = np.flatnonzero(allocated(batch))
        return flat, batch.host_offsets.ravel()[flat]

    return _cached(batch, "allocated_entries", compute)


def compressed(batch: L2Tables) -> np.ndarray:
    """Boolean mask of compressed entries."""
    return _cached(batch, "compressed", lambda: (batch.entries & _u64(spec.OFLAG_COMPRESSED)) != 0)


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
        if batch.active_refs is not None and not (batch.active_refs > 0).all():
            active = batch.active_refs[flat >> (batch.entries.shape[1].bit_length() - 1)] > 0
            flat, offsets = flat[active], offsets[active]
        if len(batch.offsets) and batch.offsets[0] == 0:
            # An L1 entry with flag bits and a zero offset: QEMU's check walks
            # cluster 0 as an L2 table, but check_oflag_copied skips entries
            # whose offset is 0, so those entries are never compared.
            keep = (flat >> (batch.entries.shape[1].bit_length() - 1)) != 0
            flat, offsets = flat[keep], offsets[keep]
        if batch.data_file:  # every data file cluster has refcount 1
            return copied_mismatch_l2(batch, flat, np.ones(len(flat), np.uint8), np.ones(len(flat), bool))
        return copied_mismatch_l2(batch, flat, *stored_refcounts.of(offsets >> _u64(cluster_bits)))

    return _cached(batch, "copied_mismatch", compute)


def copied_mismatch_l2(batch: L2Tables, flat: np.ndarray, stored: np.ndarray, readable: np.ndarray) -> np.ndarray:
    """Of the allocated entries at ``flat`` (NORMAL or ZERO_ALLOC, see
    ``allocated``), those whose COPIED flag disagrees with "the data
    cluster's refcount is 1"; with a data file the refcount counts as 1."""
    copied = (batch.entries.ravel()[flat] >> _u64(63)).astype(bool)
    if batch.data_file:
        return flat[readable & ~copied]
    return flat[readable & ((stored == 1) != copied)]
