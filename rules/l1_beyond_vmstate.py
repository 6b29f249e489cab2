"""The active L1 table maps clusters past the virtual disk.

L1 entries at or past size_to_l1(size) map the VM state area that QEMU uses
while saving a snapshot (spec, "Snapshots": the VM state is stored past the
virtual disk).  In the active table they are legal but unusual: QEMU
discards that area after the snapshot is taken.  Reported for information.

QEMU: silent.
"""

from qcow2lint import spec
from qcow2lint.records import L1Table
from qcow2lint.rulekit import entry_hits, size_to_l1, u64

NAME = "l1-beyond-vmstate"
CODE = "Q0606"
SEVERITY = "info"
SCOPE = L1Table


def check(table, ctx):
    """Flag allocated active L1 entries past the virtual disk."""
    if not table.active:
        return
    needed = size_to_l1(ctx.header, ctx.header.size)
    beyond = (table.entries & u64(spec.L1E_OFFSET_MASK)) != 0
    beyond[: min(needed, len(beyond))] = False
    yield from entry_hits(
        ctx,
        table,
        beyond,
        lambda e: (
            f"L1 entry {e:#x} maps guest data past the virtual disk ({ctx.header.size} bytes need "
            f"{needed} L1 entries): the VM state area"
        ),
    )
