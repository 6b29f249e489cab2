"""The virtual size needs more L1 entries than QEMU can index.

QEMU keeps the number of L1 entries the virtual size needs, size_to_l1(size)
= ceil(size / (cluster_size * l2_entries)), in an int, so it must not exceed
INT_MAX = 2147483647.  With 64 KiB clusters that is about 1 EiB, with
512-byte clusters 64 TiB.  Not judged when cluster_bits itself is outside
QEMU's range.

QEMU: refuses to open the image ("Image is too big"); for sizes within one
L1 entry's span of 2^64 its computation wraps around and the open fails
later ("Could not refresh total sector count: File too large").  Repair:
restore the real virtual size in the header by hand (qemu-img cannot open
the image).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import cluster_bits_supported, field_root, size_to_l1

NAME = "header-size-too-big"
CODE = "Q0113"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Image is too big",)
#: QEMU's l1_vm_state_index is an int.


def check(header, ctx):
    """Flag a virtual size whose L1 index does not fit an int."""
    if not cluster_bits_supported(header):
        return
    needed = size_to_l1(header, header.size)
    if needed > spec.INT_MAX:
        # The root of a site limit on the same size (virtual-size-too-large).
        yield field_root(
            Problem(
                header.field_offset("size"),
                "header.size",
                f"virtual size {header.size} needs {needed} L1 entries ({header.cluster_size}-byte clusters, "
                f"{header.l2_entries} entries per L2 table); QEMU allows at most {spec.INT_MAX}",
            ),
            8,
        )
