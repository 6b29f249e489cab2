"""A metadata cluster that is never shared has a refcount other than 1.

The header cluster, L1 tables, the refcount table and blocks, the snapshot
table and the bitmap directory and tables are owned by exactly one structure
each: their refcount must be 1 (spec, "Host cluster management").  (L2
tables and data may be shared by snapshots and are judged by the refcount
rules.)

QEMU: `qemu-img check` reports the mismatch as a corruption or a leak; a
wrong refcount on metadata lets QEMU free or reuse it.  Repair:
`qemu-img check -r all`.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import RefcountCheck

NAME = "metadata-refcount-gt-one"
CODE = "Q1111"
SEVERITY = "error"
SCOPE = RefcountCheck
OWNED = {"header", "active-l1", "inactive-l1", "reftable", "refblock", "snapshot-table", "bitmap-directory", "bitmap-table"}


def check(refcounts, ctx):
    """Flag the first cluster of each owned structure whose stored refcount is not 1."""
    bits = ctx.header.cluster_bits
    for extent in refcounts.metadata:
        if extent.kind not in OWNED:
            continue
        first, last = extent.offset >> bits, (extent.offset + extent.length - 1) >> bits
        for cluster in range(first, min(last, refcounts.compared - 1) + 1):
            stored = int(refcounts.stored.counts[cluster]) if cluster < len(refcounts.stored.counts) else 0
            if stored != 1:
                yield Problem(
                    cluster << bits, extent.label,
                    f"{extent.kind} {extent.label} at {extent.offset:#x}: cluster {cluster} has refcount {stored}, "
                    "must be 1",
                )  # fmt: skip
                break
