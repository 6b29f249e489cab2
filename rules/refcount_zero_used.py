"""A cluster's stored refcount is 0 but the cluster is used.

The refcount of every cluster must equal the number of references to it from
the image's structures, rebuilt as QEMU's check does (header, L1/L2 tables
and data of the active disk and every snapshot, compressed data by the
sectors it spans, snapshot table, refcount table and blocks, encryption
area, bitmap directory, tables and data; spec, "Host cluster management").

QEMU: `qemu-img check` counts a corruption ("ERROR cluster N refcount=0 reference=M") and wants a rebuild; without repair QEMU may hand the cluster out again and overwrite live data.  Repair: `qemu-img check -r all` rebuilds the refcount structures.
"""

from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import mismatch_hits

NAME = "refcount-zero-used"
CODE = "Q1105"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Compare the stored refcounts with the rebuilt ones."""
    yield from mismatch_hits(ctx, refcounts, lambda s, c: s == 0)
