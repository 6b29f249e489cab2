"""The dirty bit is set in an image that does not use lazy refcounts.

QEMU sets the dirty bit (incompatible bit 0) only while an image with lazy
refcounts (compatible bit 0) is open for writing (spec, "Header",
incompatible_features).  A dirty image without lazy refcounts was left so by
something else (another writer, or lazy refcounts switched off without a
clean close), so its refcounts deserve a check.  This rule reports the
dirty bit of such an image alone (dirty-bit-set reports it when lazy
refcounts are on).

QEMU: silent about the combination; a read-write open rebuilds the
refcounts and clears the bit as for any dirty image.  Repair: `qemu-img
check -r all`.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "dirty-without-lazy-refcounts"
CODE = "Q0205"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag dirty without compatible bit 0."""
    dirty = header.incompatible_features & spec.INCOMPAT_DIRTY
    if header.version >= 3 and dirty and not header.compatible_features & spec.COMPAT_LAZY_REFCOUNTS:
        yield Problem(
            header.field_offset("incompatible_features"),
            "header.incompatible_features",
            f"the dirty bit is set, but compatible_features {header.compatible_features:#x} lacks lazy refcounts "
            "(bit 0), the only mode in which QEMU sets it",
        )
