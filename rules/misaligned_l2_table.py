"""An L1 entry points at an L2 table that is not cluster-aligned.

The L2 table offset in an L1 entry (bits 9-55) must be cluster-aligned
(spec, "Cluster mapping", L1 table entry).  Applies to the active L1 and to
every snapshot's L1 table.

QEMU: `qemu-img check` counts a corruption ("ERROR l2_offset=...: Table is
not cluster aligned; L1 entry corrupted") and still parses the L2 table
from that offset, so expect follow-on findings; guest I/O fails ("L2 table
offset 0x... unaligned").
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L1Table
from qcow2lint.rulekit import entry_hits_at, unusable_table

NAME = "misaligned-l2-table"
CODE = "Q0602"
SEVERITY = "error"
SCOPE = L1Table


def check(table, ctx):
    """Flag L1 entries whose L2 offset is not a multiple of the cluster size."""
    yield from entry_hits_at(
        ctx,
        table,
        predicates.l1_misaligned(table, ctx.cluster_size),
        lambda e: (
            f"L2 table offset {e & spec.L1E_OFFSET_MASK:#x} (L1 entry {e:#x}) is not a multiple "
            f"of the cluster size {ctx.cluster_size:#x}"
        ),
        hints=lambda e: unusable_table(e & spec.L1E_OFFSET_MASK, ctx.cluster_size, "l2", ctx, ctx.header.l2_entries),
    )
