"""The active L1 table has more entries than the virtual disk needs.

l1_size may exceed size_to_l1(size) = ceil(size / (cluster_size *
l2_entries)): the entries past the disk map the VM state area of internal
snapshots, and an image shrunk with `qemu-img resize --shrink` keeps its
larger L1 table (spec, "Header").  This is legal, and shown for information.

Off by default (a legal layout `qemu-img resize --shrink` writes); the
`pedantic` preset enables it.

QEMU: accepts it silently.  Repair: not needed; `qemu-img convert` writes a
table of the exact size.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import size_to_l1

NAME = "l1-larger-than-needed"
CODE = "Q0504"
SEVERITY = "info"
SCOPE = Header
DEFAULT_ENABLED = False


def check(header, ctx):
    """Report an l1_size above size_to_l1(size)."""
    if not spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS:
        return  # header-cluster-bits-range
    needed = size_to_l1(header, header.size)
    # A table too large for QEMU is reported by l1-too-large instead.
    if needed < header.l1_size <= spec.MAX_L1_SIZE // 8:
        yield Problem(
            header.field_offset("l1_size"),
            "header.l1_size",
            f"l1_size {header.l1_size} is larger than the {needed} entries the virtual size {header.size} needs",
        )
