"""A bitmap data cluster is also used by another structure.

Each serialized bitmap table entry names a data cluster that belongs to that
bitmap alone (spec, "Bitmaps").  Found in the typed extent map, so it is
caught even when the refcount was raised to match.

QEMU: `qemu-img check` sees it only as a refcount mismatch ("ERROR cluster N
refcount=1 reference=2"); QEMU's write-time overlap guard has no kind for
bitmap data, so guest writes silently change the bitmap (or the bitmap,
when saved, overwrites data).  Repair: remove the bitmap
(`qemu-img bitmap --remove IMG NAME`), then `qemu-img check -r all`.
"""

from qcow2lint.findings import Problem
from qcow2lint.results import RefcountCheck

NAME = "bitmap-data-shared"
CODE = "Q1435"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Report overlaps in which one side is bitmap data."""
    for overlap in refcounts.overlaps:
        if overlap.category != "bitmap-data":
            continue
        bitmap, other = overlap.first, overlap.second
        if bitmap.kind != "bitmap-data":
            bitmap, other = other, bitmap
        yield Problem(
            overlap.cluster * ctx.cluster_size,
            bitmap.label,
            f"bitmap data {bitmap.label} at {bitmap.offset:#x} is also {other.kind} {other.label} "
            f"(cluster {overlap.cluster})",
        )
