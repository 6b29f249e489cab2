"""The refcount table is larger than QEMU allows.

refcount_table_clusters * cluster_size must not exceed QEMU's
QCOW_MAX_REFTABLE_SIZE of 8 MiB (noted in spec, "Host cluster management";
qcow2_validate_table).

QEMU: refuses to open the image ("Reference count table too large").
Repair: none with qemu-img; refcount_table_clusters is damaged and must be
restored from a copy.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "reftable-too-large"
CODE = "Q0507"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Reference count table too large",)


def check(header, ctx):
    """Flag a refcount table of more than 8 MiB."""
    if not spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS:
        return  # header-cluster-bits-range
    limit = spec.MAX_REFTABLE_SIZE // header.cluster_size
    if header.refcount_table_clusters > limit:
        # QEMU refuses the table; read in full, whatever follows the entries
        # the file needs (one per refcount block of its clusters) is not a
        # refcount table: what is read from there follows from this finding.
        block_entries = header.cluster_size * 8 >> header.refcount_order if header.refcount_order < 7 else 1
        file_clusters = -(-ctx.file_size // header.cluster_size)
        needed = min(-(-file_clusters // max(block_entries, 1)), limit * header.cluster_size // 8)
        start = header.refcount_table_offset + needed * spec.REFTABLE_ENTRY_SIZE
        yield Problem(
            header.field_offset("refcount_table_clusters"),
            "header.refcount_table_clusters",
            f"refcount_table_clusters {header.refcount_table_clusters} makes a "
            f"{header.refcount_table_clusters * header.cluster_size}-byte refcount table; QEMU allows at most "
            f"{limit} clusters ({spec.MAX_REFTABLE_SIZE} bytes)",
            covers=(start, header.refcount_table_offset + header.refcount_table_clusters * header.cluster_size),
        )
