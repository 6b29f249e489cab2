"""The active L1 table is larger than QEMU allows.

l1_size * 8 must not exceed QEMU's QCOW_MAX_L1_SIZE of 32 MiB, so l1_size is
at most 4194304 entries (noted in spec, "Header", size;
qcow2_validate_table).

QEMU: refuses to open the image ("Active L1 table too large").  Repair: none
with qemu-img; l1_size is damaged and must be restored from a copy.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import cluster_bits_supported, size_to_l1

NAME = "l1-too-large"
CODE = "Q0502"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Active L1 table too large",)
MAX_ENTRIES = spec.MAX_L1_SIZE // 8


def check(header, ctx):
    """Flag an l1_size above 4194304."""
    if header.l1_size > MAX_ENTRIES:
        # QEMU refuses the table; read with l1_size entries, whatever follows
        # the entries the disk needs is not L1 entries: what is read from
        # there follows from this finding.
        needed = min(size_to_l1(header, header.size) if cluster_bits_supported(header) else 0, header.l1_size)
        start = header.l1_table_offset + needed * spec.L1_ENTRY_SIZE
        yield Problem(
            header.field_offset("l1_size"),
            "header.l1_size",
            f"l1_size {header.l1_size} makes a {header.l1_size * spec.L1_ENTRY_SIZE}-byte L1 table; QEMU allows at most "
            f"{MAX_ENTRIES} entries ({spec.MAX_L1_SIZE} bytes)",
            covers=(start, header.l1_table_offset + header.l1_size * spec.L1_ENTRY_SIZE),
            reads="l1",
        )
