"""Two structures claim the same cluster.

Every cluster belongs to one structure: the header, an L1 or L2 table, the
refcount table or a block, the snapshot table, the bitmap directory, a
bitmap table or its data, the encryption area, or guest data (spec, "Host
cluster management").  This rule finds overlaps in a typed map of every
extent, so it also catches overlaps whose refcount was raised to match.  An
L2 table that overlaps other metadata is reported by
l1-entry-points-to-metadata, bitmap data that overlaps anything by
bitmap-data-shared.  (The overlap-<kindA>-<kindB> names listed in
docs/rules.md are this rule: the message names both kinds.)

QEMU: `qemu-img check` sees an overlap only when a refcount disagrees; when
the refcount was raised to match it says "No errors", yet a guest write
through one structure corrupts the other (QEMU's own write-time guard
refuses some: "Preventing invalid write on metadata (overlaps with ...)").
Repair: none in place; recover the data with `qemu-img convert` and check
the result.
"""

from qcow2lint.findings import Problem
from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import data_extent_table

NAME = "metadata-overlap"
CODE = "Q1201"
SEVERITY = "error"
SCOPE = RefcountCheck
STRICTER_THAN_QEMU = (
    "Two structures share a cluster: a write to one destroys the other. `qemu-img check` "
    "sees it only when a refcount disagrees, and a raised refcount hides it."
)


def check(refcounts, ctx):
    """Report overlaps that do not involve an L2 table's placement."""
    for overlap in refcounts.overlaps:
        if overlap.category != "metadata":
            continue
        first, second = overlap.first, overlap.second
        if second.kind == "data":
            message = (
                f"L2 entry {second.label} maps guest data to {second.offset:#x}, inside the {first.kind} {first.label}"
            )
        else:
            message = f"{second.kind} {second.label} at {second.offset:#x} overlaps {first.kind} {first.label} at {first.offset:#x}"
        yield Problem(
            overlap.cluster * ctx.cluster_size,
            second.label,
            f"{message} (cluster {overlap.cluster})",
            clusters=(overlap.cluster, overlap.cluster),
            refs="extra",
            about=data_extent_table(second),
        )
