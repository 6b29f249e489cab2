"""Job 1 of the refcount analysis: the refcounts stored on disk.

Every refcount block is decoded, block by block, into one bit per cluster
("refcount 1") plus the decoded values of the few blocks that hold other
non-zero refcounts (:class:`~qcow2lint.results.StoredRefcounts`).  Rules
(the COPIED checks) and the refcount pass share the result: it is computed
once per open image file.
"""

from __future__ import annotations

import numpy as np

from qcow2lint import spec
from qcow2lint.passes.base import MAX_CLUSTERS, MAX_EVENTS
from qcow2lint.reader import WINDOW_BYTES, ImageFile, cluster_runs
from qcow2lint.records import Image, RefcountBlock
from qcow2lint.results import StoredRefcounts


def stored_refcounts(image_file: ImageFile) -> StoredRefcounts | None:
    """The decoded stored refcounts of an open image (None when the image is
    too large to analyse), read once per file."""
    return image_file.memo.once("stored-refcounts", lambda: read_stored_refcounts(image_file))


def refcount_dtype(refcount_order: int) -> np.dtype:
    """The narrowest unsigned dtype that holds a refcount of this width."""
    return np.dtype(f"u{max(1, (1 << refcount_order) // 8)}")


def read_stored_refcounts(image_file: ImageFile) -> StoredRefcounts | None:
    """Decode every refcount block, block by block, into the compact
    :class:`StoredRefcounts` (None when the image is too large to analyse)."""
    image = image_file.image
    header = image.header
    length = cluster_count(image)
    if length > MAX_CLUSTERS or image.refcount_table is None or header.refcount_order > spec.MAX_REFCOUNT_ORDER:
        return None
    per_block = header.cluster_size * 8 >> header.refcount_order
    dtype = refcount_dtype(header.refcount_order)
    offsets = image.refcount_table.entries & np.uint64(spec.REFT_OFFSET_MASK)
    # The refcounts end with the last refcount block (clusters past it read
    # as 0, see StoredRefcounts.of): a sparse file of terabytes with a few
    # blocks costs what its blocks cover, not its apparent size.
    misaligned_mask = (offsets & np.uint64(header.cluster_size - 1)) != 0
    used = np.flatnonzero(((offsets != 0) & (offsets < np.uint64(image.file_size))) | misaligned_mask)
    span = min(length, (int(used[-1]) + 1) * per_block) if len(used) else 0
    ones = np.zeros(-(-span // 8), np.uint8)
    dense: dict[int, np.ndarray] = {}
    unreadable = misaligned_mask.copy() if misaligned_mask.any() else None
    beyond: list[tuple[int, int]] = []
    beyond_count = 0
    # Several refcount table entries may name one block (a hostile table can
    # name one block 2^18 times): each distinct block is read and decoded
    # once, and an entry past the file's clusters costs a count, not a decode.
    aligned = np.flatnonzero((offsets != 0) & (offsets < np.uint64(image.file_size)) & ~misaligned_mask)
    if not image.readable:
        aligned = aligned[:0]
    distinct, inverse = np.unique(offsets[aligned], return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(distinct)))])
    per_window = max(1, WINDOW_BYTES // header.cluster_size)
    for group, offset in enumerate(distinct.tolist()):
        # The next window of blocks, fetched at once from a remote image.
        if image_file.reader.planning and group % per_window == 0:
            image_file.reader.plan(cluster_runs(distinct[group : group + per_window], header.cluster_size), "stored")
        indices = aligned[order[bounds[group] : bounds[group + 1]]]  # ascending table indices
        raw = image_file.reader.read(offset, header.cluster_size).ljust(header.cluster_size, b"\0")
        values = RefcountBlock(int(indices[0]), offset, header.refcount_order, np.frombuffer(raw, np.uint8)).refcounts()
        nonzero = np.flatnonzero(values)
        found: list[tuple[int, int]] = []  # this block's clusters past the range, ascending
        for position, index in enumerate(indices.tolist()):
            first = index * per_block  # a multiple of 8: whole bytes of ``ones``
            inside = max(0, min(per_block, length - first))
            if not inside and len(found) >= MAX_EVENTS:
                # past the file's clusters, and enough examples: only the count
                beyond_count += len(nonzero) * (len(indices) - position)
                break
            kept = values[:inside]
            if inside:
                ones[first >> 3 : (first + inside + 7) >> 3] = np.packbits(kept == 1)
                if int(kept.max(initial=0)) > 1:
                    dense[index] = kept.astype(dtype)
            outside = nonzero[np.searchsorted(nonzero, inside) :]
            beyond_count += len(outside)
            found += [(first + int(i), int(values[i])) for i in outside[: MAX_EVENTS - len(found)]]
        if found and (len(beyond) < MAX_EVENTS or found[0] < beyond[-1]):
            # keep the first MAX_EVENTS in table (= cluster) order
            beyond = sorted(beyond + found)[:MAX_EVENTS]
    return StoredRefcounts(span, per_block, dtype, ones, dense, unreadable, tuple(beyond), beyond_count)


def cluster_count(image: Image) -> int:
    """Clusters QEMU compares: the file's, plus one for a reference that
    overruns the end of the file by less than a cluster."""
    return -(-image.file_size // image.header.cluster_size) + 1
