"""The refcount table offset is not cluster-aligned.

refcount_table_offset must be a multiple of the cluster size (spec,
"Header").

QEMU: refuses to open the image ("Reference count table offset invalid").
"""

import attrs

from qcow2lint.records import RefcountTable
from qcow2lint.rulekit import header_field_misaligned

NAME = "misaligned-refcount-table"
CODE = "Q0506"
SEVERITY = "error"
SCOPE = RefcountTable
QEMU_REFUSES = ("Reference count table offset invalid",)
#: The last cluster index there can be (a byte offset is below 2^64).
ALL_CLUSTERS = (1 << 64) - 1


def check(table, ctx):
    """Flag a misaligned refcount_table_offset."""
    header = ctx.header
    start = header.refcount_table_offset
    for problem in header_field_misaligned(ctx, "refcount_table_offset", "the refcount table"):
        # The table read at the misaligned offset is garbage, and so is every
        # refcount read through it: what is said of either follows.
        yield attrs.evolve(
            problem,
            covers=(start, start + header.refcount_table_clusters * header.cluster_size),
            explains=(0, ALL_CLUSTERS),
        )
