"""A refcount block is referenced other than exactly once.

A refcount block belongs to the refcount structure alone: the cluster
holding it must have exactly one reference, from its refcount table entry
(spec, "Host cluster management").  More references mean another structure
claims the same cluster.

QEMU: `qemu-img check` counts a corruption ("ERROR refcount block N
refcount=M") and wants a refcount rebuild.  Repair: `qemu-img check -r all`.
"""

from qcow2lint import spec
from qcow2lint.findings import Omitted, Problem
from qcow2lint.results import RefcountCheck

NAME = "refblock-refcount-not-one"
CODE = "Q1104"
SEVERITY = "error"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Flag refcount blocks whose cluster has more than one reference."""
    reftable = ctx.image.refcount_table
    issues = refcounts.refblock_issues
    for position, issue in enumerate(issues):
        if issue.kind == "refcount":
            if not ctx.remaining:  # over the cap (a table naming one block 2^18 times): only counted
                yield Omitted(sum(1 for rest in issues[position:] if rest.kind == "refcount"))
                return
            yield Problem(
                reftable.file_offset + spec.REFTABLE_ENTRY_SIZE * issue.index,
                f"reftable[{issue.index}]",
                f"refcount block at {issue.offset:#x} has {issue.value} references, must be 1",
            )
