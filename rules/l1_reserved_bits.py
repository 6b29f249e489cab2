"""An L1 table entry has reserved bits set.

Bits 0-8 and 56-62 of an L1 entry are reserved and must be zero (spec,
"Cluster mapping", L1 table entry, mask 0x7f000000000001ff).  Applies to the
active L1 table and to every snapshot's L1 table.

QEMU: `qemu-img check` counts it as a corruption ("ERROR found L1 entry with
reserved bits set").  Repair: `qemu-img check -r all` cannot clear the bits;
convert the image (`qemu-img convert -O qcow2`) from a trusted copy.
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L1Table
from qcow2lint.rulekit import entry_hits_at

NAME = "l1-reserved-bits"
CODE = "Q0601"
SEVERITY = "error"
SCOPE = L1Table
MASK = spec.L1E_RESERVED_MASK


def check(table, ctx):
    """Flag every L1 entry with a reserved bit set."""
    yield from entry_hits_at(
        ctx,
        table,
        predicates.l1_reserved(table),
        lambda e: f"L1 entry {e:#x} has reserved bits {e & MASK:#x} set (mask {MASK:#x})",
    )
