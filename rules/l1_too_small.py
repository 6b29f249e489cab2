"""The active L1 table is too small to map the whole virtual disk.

l1_size must be at least size_to_l1(size) = ceil(size / (cluster_size *
l2_entries)), the number of L2 tables the virtual disk needs (spec, "Header"
and "Cluster mapping").

QEMU: refuses to open the image ("L1 table is too small").  Repair: none
with qemu-img (it cannot open the image); either size or l1_size is
damaged and must be restored from a copy.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import size_to_l1

NAME = "l1-too-small"
CODE = "Q0503"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("L1 table is too small",)


def check(header, ctx):
    """Flag an l1_size below size_to_l1(size)."""
    if not spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS:
        return  # header-cluster-bits-range
    needed = size_to_l1(header, header.size)
    # Past INT_MAX QEMU says "Image is too big" first (header-size-too-big).
    if header.l1_size < needed <= spec.INT_MAX:
        yield Problem(
            header.field_offset("l1_size"),
            "header.l1_size",
            f"l1_size {header.l1_size} is too small for the virtual size {header.size}: "
            f"{needed} entries are needed ({header.cluster_size * header.l2_entries} bytes each)",
            # The entries past l1_size are never read: what only they
            # reference leaks.
            lost=(header.l1_table_offset + header.l1_size * 8, needed - header.l1_size, "l1"),
        )
