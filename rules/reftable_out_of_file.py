"""The refcount table ends one cluster or more past the end of the file.

The refcount table (refcount_table_clusters clusters at
refcount_table_offset) must lie inside the file.  As in QEMU's check, a
table that ends less than one cluster past the end of the file is left to
file-truncated, which reports any cut: that part reads as zeros.

QEMU: the missing entries read as zeros, so the clusters they cover look
free and may be handed out again; `qemu-img check` counts a corruption
("ERROR: counting reference for region exceeding the end of the file by one
cluster or more: offset ... size ...").  Repair: `qemu-img check -r all`
rebuilds the refcount structure.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import RefcountTable
from qcow2lint.rulekit import ends_out_of_file

NAME = "reftable-out-of-file"
CODE = "Q0509"
SEVERITY = "error"
SCOPE = RefcountTable


def check(table, ctx):
    """Flag a refcount table that ends a cluster or more past EOF."""
    header = ctx.header
    size = header.refcount_table_clusters * ctx.cluster_size
    # A table QEMU refuses as too large is reported by reftable-too-large alone.
    if size <= spec.MAX_REFTABLE_SIZE and ends_out_of_file(header.refcount_table_offset, size, ctx):
        end = header.refcount_table_offset + size
        yield Problem(
            header.field_offset("refcount_table_offset"),
            "header.refcount_table_offset",
            f"refcount table {header.refcount_table_offset:#x}..{end:#x} "
            f"(refcount_table_clusters {header.refcount_table_clusters}) ends {end - ctx.file_size} bytes past the end of "
            f"the file ({ctx.file_size} bytes)",
        )
