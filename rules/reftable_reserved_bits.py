"""A refcount table entry has reserved bits set.

Bits 0-8 of a refcount table entry are reserved and must be zero (spec,
"Host cluster management", refcount table entry, mask 0x1ff).

QEMU: `qemu-img check` counts it as a corruption ("ERROR refcount table entry
N has reserved bits set") and needs a refcount rebuild.  Repair:
`qemu-img check -r all` rebuilds the refcount structures.
"""

from qcow2lint import spec
from qcow2lint.records import RefcountTable
from qcow2lint.rulekit import entry_hits, u64

NAME = "reftable-reserved-bits"
CODE = "Q1101"
SEVERITY = "error"
SCOPE = RefcountTable
MASK = spec.REFT_RESERVED_MASK


def check(table, ctx):
    """Flag every refcount table entry with a reserved bit set."""
    yield from entry_hits(
        ctx,
        table,
        (table.entries & u64(MASK)) != 0,
        lambda e: f"refcount table entry {e:#x} has reserved bits {e & MASK:#x} set (mask {MASK:#x})",
    )
