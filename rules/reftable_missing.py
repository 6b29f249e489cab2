"""The image has no refcount table.

refcount_table_clusters must be at least 1: every image needs refcounts for
its own header cluster (spec, "Header").

QEMU: refuses to open the image ("Image does not contain a reference count
table").  `qemu-img check` may still open it and reports every used cluster
("ERROR cluster N refcount=0 reference=1").  Repair: `qemu-img check -r all`
rebuilds the refcount structure.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "reftable-missing"
CODE = "Q0508"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Image does not contain a reference count table",)


def check(header, ctx):
    """Flag refcount_table_clusters 0."""
    if header.refcount_table_clusters == 0:
        yield Problem(
            header.field_offset("refcount_table_clusters"),
            "header.refcount_table_clusters",
            "refcount_table_clusters is 0: the image has no refcount table",
        )
