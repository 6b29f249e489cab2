"""The refcount table offset is not cluster-aligned.

refcount_table_offset must be a multiple of the cluster size (spec,
"Header").

QEMU: refuses to open the image ("Reference count table offset invalid").
"""

from qcow2lint.records import RefcountTable
from qcow2lint.rulekit import header_field_misaligned

NAME = "misaligned-refcount-table"
CODE = "Q0506"
SEVERITY = "error"
SCOPE = RefcountTable
QEMU_REFUSES = ("Reference count table offset invalid",)


def check(table, ctx):
    """Flag a misaligned refcount_table_offset."""
    yield from header_field_misaligned(ctx, "refcount_table_offset", "the refcount table")
