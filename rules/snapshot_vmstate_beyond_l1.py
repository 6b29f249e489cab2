"""A snapshot's VM state does not fit in its L1 table.

The VM state of a snapshot is stored in the guest address range just past
the disk: from L1 index size_to_l1(disk_size) on, it needs
ceil(vm_state_size / (cluster_size * l2_entries)) more L1 entries, so
l1_size must be at least the sum (spec, "Snapshots").  vm_state_size is the
64-bit extra data field when present, else the 32-bit one.

QEMU: does not check it (a 1 TiB VM state with l1_size 1 passes `qemu-img
check`); loading the VM state (`loadvm`) reads zeros past the table and the
guest cannot resume.  Repair: the VM state is lost; delete the snapshot
(`qemu-img snapshot -d ID IMG`) or boot from its disk state only.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import size_to_l1, snapshot_disk_size

NAME = "snapshot-vmstate-beyond-l1"
CODE = "Q1309"
SEVERITY = "warning"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag a VM state that needs more L1 entries than the snapshot has."""
    vm_state = entry.vm_state_size
    if vm_state == 0:
        return
    disk = size_to_l1(ctx.header, snapshot_disk_size(entry, ctx.header))
    state = size_to_l1(ctx.header, vm_state)
    if disk + state > entry.l1_size:
        large = len(entry.extra_data) >= 8
        yield Problem(
            entry.field_offset("vm_state_size_large" if large else "vm_state_size32"),
            f"{entry.path}.vm_state_size",
            f"snapshot vm_state_size {vm_state} needs {disk + state} L1 entries ({disk} for the disk, "
            f"{state} for the VM state), but l1_size is {entry.l1_size}",
        )
