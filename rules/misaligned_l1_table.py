"""The active L1 table offset is not cluster-aligned.

l1_table_offset must be a multiple of the cluster size (spec, "Header").

QEMU: refuses to open the image ("Active L1 table offset invalid").
"""

from qcow2lint.records import L1Table
from qcow2lint.rulekit import header_field_misaligned

NAME = "misaligned-l1-table"
CODE = "Q0501"
SEVERITY = "error"
SCOPE = L1Table


def check(table, ctx):
    """Flag a misaligned l1_table_offset."""
    if table.active:
        yield from header_field_misaligned(ctx, "l1_table_offset", "the active L1 table")
