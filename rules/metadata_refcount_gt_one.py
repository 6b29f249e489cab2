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
from qcow2lint.rulekit import OWNED_METADATA

NAME = "metadata-refcount-gt-one"
CODE = "Q1111"
SEVERITY = "error"
SCOPE = RefcountCheck
OWNED = OWNED_METADATA


def check(refcounts, ctx):
    """Flag each run of clusters of an owned structure whose stored refcount is not 1."""
    bits = ctx.header.cluster_bits
    counts = refcounts.stored.counts
    for extent in refcounts.metadata:
        if extent.kind not in OWNED:
            continue
        first, last = extent.offset >> bits, (extent.offset + extent.length - 1) >> bits
        bad = [
            (cluster, int(counts[cluster]) if cluster < len(counts) else 0)
            for cluster in range(first, min(last, refcounts.compared - 1) + 1)
        ]
        bad = [(cluster, stored) for cluster, stored in bad if stored != 1]
        at = 0
        while at < len(bad):
            start, stored = bad[at]
            length = 1
            while at + length < len(bad) and bad[at + length] == (start + length, stored):
                length += 1
            at += length
            where = f"cluster {start}" if length == 1 else f"clusters {start}..{start + length - 1} ({length} clusters)"
            yield Problem(
                start << bits, extent.label,
                f"{extent.kind} {extent.label} at {extent.offset:#x}: {where} {'has' if length == 1 else 'each have'} "
                f"refcount {stored}, must be 1",
                clusters=(start, start + length - 1), refs="missing" if stored > 1 else "extra",
            )  # fmt: skip
