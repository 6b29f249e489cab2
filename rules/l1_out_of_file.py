"""The active L1 table ends one cluster or more past the end of the file.

The active L1 table (l1_size * 8 bytes at l1_table_offset) must lie inside
the file.  As in QEMU's check, a table that ends less than one cluster past
the end of the file is left to file-truncated, which reports any cut: that part reads as
zeros.

QEMU: opens the image and reads the missing entries as zeros, so the guest
sees unallocated clusters where data was; `qemu-img check` counts a
corruption ("ERROR: counting reference for region exceeding the end of the
file by one cluster or more: offset ... size ...").  Repair: the file was
cut short or l1_table_offset is damaged; fetch the image again.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import L1Table
from qcow2lint.rulekit import ends_out_of_file, out_of_file_table

NAME = "l1-out-of-file"
CODE = "Q0505"
SEVERITY = "error"
SCOPE = L1Table


def check(table, ctx):
    """Flag an active L1 table that ends a cluster or more past EOF."""
    header = ctx.header
    size = header.l1_size * spec.L1_ENTRY_SIZE
    # A table QEMU refuses as too large is reported by l1-too-large alone.
    if table.active and size <= spec.MAX_L1_SIZE and ends_out_of_file(header.l1_table_offset, size, ctx):
        end = header.l1_table_offset + size
        yield Problem(
            header.field_offset("l1_table_offset"),
            "header.l1_table_offset",
            f"active L1 table {header.l1_table_offset:#x}..{end:#x} (l1_size {header.l1_size}) ends "
            f"{end - ctx.file_size} bytes past the end of the file ({ctx.file_size} bytes)",
            # wholly past the end, its offset is wrong: what is said of it
            # follows, and the table it should be, which nothing names, leaks
            **out_of_file_table(header.l1_table_offset, size, header.l1_size, "l1", ctx),
        )
