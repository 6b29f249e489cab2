"""A cluster's stored refcount is lower than the references to the cluster.

The refcount of every cluster must equal the number of references to it from
the image's structures, rebuilt as QEMU's check does (header, L1/L2 tables
and data of the active disk and every snapshot, compressed data by the
sectors it spans, snapshot table, refcount table and blocks, encryption
area, bitmap directory, tables and data; spec, "Host cluster management").

QEMU: `qemu-img check` counts a corruption ("ERROR cluster N refcount=R reference=M"); a later write may free a cluster that is still in use.  Repair: `qemu-img check -r all`.
"""

from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import mismatch_hits

NAME = "refcount-too-low"
CODE = "Q1106"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Compare the stored refcounts with the rebuilt ones."""
    yield from mismatch_hits(ctx, refcounts, lambda s, c: (s > 0) & (s < c))
