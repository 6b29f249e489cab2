"""A metadata cluster that is never shared has a refcount other than 1.

The header cluster, L1 tables, the refcount table and blocks, the snapshot
table and the bitmap directory and tables are owned by exactly one structure
each: their refcount must be 1 (spec, "Host cluster management").  (L2
tables and data may be shared by snapshots and are judged by the refcount
rules.)  A refcount of 0 is flagged as well as one above 1.  The rule was
called metadata-refcount-gt-one; that name still selects it.

QEMU: `qemu-img check` reports the mismatch as a corruption or a leak; a
wrong refcount on metadata lets QEMU free or reuse it.  Repair:
`qemu-img check -r all`.
"""

import numpy as np

from qcow2lint.findings import Omitted, Problem
from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import owned_runs, runs

NAME = "metadata-refcount-not-one"
CODE = "Q1111"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Flag each run of clusters of an owned structure whose stored refcount is not 1."""
    bits = ctx.header.cluster_bits
    judged: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for extent, first, last, copies in owned_runs(refcounts, bits):
        spans = judged.get((first, last))
        if spans is None:  # one refcount block named by many entries is judged once
            counts = refcounts.stored.values(first, last + 1)  # 0 past the stored refcounts
            bad = np.flatnonzero(counts != 1)
            values = counts[bad]
            spans = [(first + int(bad[s]), int(n), int(values[s])) for s, n in zip(*runs(bad, values), strict=True)]
            judged[(first, last)] = spans
        if not spans:
            continue
        for copy in range(copies):
            if not ctx.remaining:  # over the cap: the rest are only counted
                yield Omitted(len(spans) * (copies - copy))
                break
            yield from _problems(extent, spans, bits)


def _problems(extent, spans, bits):
    """The problems of one owned extent's runs of clusters with a refcount other than 1."""
    for start, length, stored in spans:
        where = f"cluster {start}" if length == 1 else f"clusters {start}..{start + length - 1} ({length} clusters)"
        yield Problem(
            start << bits,
            extent.label,
            f"{extent.kind} {extent.label} at {extent.offset:#x}: {where} {'has' if length == 1 else 'each have'} "
            f"refcount {stored}, must be 1",
            clusters=(start, start + length - 1),
            refs="missing" if stored > 1 else "extra",
        )
