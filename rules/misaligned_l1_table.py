"""The active L1 table offset is not cluster-aligned.

l1_table_offset must be a multiple of the cluster size (spec, "Header").

QEMU: refuses to open the image ("Active L1 table offset invalid").
"""

import attrs

from qcow2lint.records import L1Table
from qcow2lint.rulekit import header_field_misaligned, unusable_table

NAME = "misaligned-l1-table"
CODE = "Q0501"
SEVERITY = "error"
SCOPE = L1Table
QEMU_REFUSES = ("Active L1 table offset invalid",)


def check(table, ctx):
    """Flag a misaligned l1_table_offset."""
    if table.active:
        hints = unusable_table(table.file_offset, table.expected_entries * 8, "l1", ctx, table.expected_entries)
        for problem in header_field_misaligned(ctx, "l1_table_offset", "the active L1 table"):
            yield attrs.evolve(problem, **hints)
