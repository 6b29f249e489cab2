"""An L2 table entry has reserved bits set.

In a standard or extended L2 entry that is not compressed, bits 1-8 and
56-61 are reserved and must be zero (spec, "Cluster mapping", Standard
Cluster Descriptor, mask 0x3f000000000001fe).  This applies to unallocated
and zero entries too.  Compressed entries use those bits for the compressed
descriptor and are not judged here.

QEMU: `qemu-img check` counts it as a corruption ("ERROR found l2 entry with
reserved bits set").  Repair: convert the image from a trusted copy.
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits

NAME = "l2-reserved-bits"
CODE = "Q0701"
SEVERITY = "error"
SCOPE = L2Tables
REPRO = """\
qemu-img create -f qcow2 repro.qcow2 1M
qemu-io -c 'write 0 64k' repro.qcow2
# the first L2 table is at 0x40000 in this layout; set bit 1 of entry 0
qemu-io -f raw -c 'write -P 2 0x40007 1' repro.qcow2
"""
MASK = spec.L2E_STD_RESERVED_MASK


def check(batch, ctx):
    """Flag every uncompressed L2 entry with a reserved bit set."""
    yield from l2_hits(
        ctx,
        batch,
        predicates.l2_reserved(batch),
        lambda e, _: f"L2 entry {e:#x} has reserved bits {e & MASK:#x} set (mask {MASK:#x})",
    )
