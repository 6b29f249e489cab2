"""refcount_order is above 6: refcounts wider than 64 bits.

refcount_bits = 1 << refcount_order, and the spec limits it to 64
(refcount_order <= 6) (spec, "Header", refcount_order).  The refcount blocks
cannot be read with a larger order.

QEMU: refuses to open the image ("Reference count entry width too large;
may not exceed 64 bits").  Repair: restore the order the image was
written with by hand (QEMU writes 4 unless refcount_bits was given), then
`qemu-img check` it.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "refcount-order-too-large"
CODE = "Q0216"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Reference count entry width too large; may not exceed 64 bits",)


def check(header, ctx):
    """Flag a v3 refcount_order above 6."""
    if header.version >= 3 and header.refcount_order > spec.MAX_REFCOUNT_ORDER:
        yield Problem(
            header.field_offset("refcount_order"),
            "header.refcount_order",
            f"refcount_order {header.refcount_order} asks for refcounts of 2^{header.refcount_order} bits; "
            f"the maximum is {spec.MAX_REFCOUNT_ORDER} (64-bit refcounts)",
        )
