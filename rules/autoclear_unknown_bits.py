"""The header sets autoclear feature bits QEMU does not know.

A writer must clear the autoclear bits it does not know (spec, "Header",
autoclear_features).  QEMU knows bit 0 (bitmaps extension consistent) and
bit 1 (raw external data).

QEMU: clears unknown bits on the next read-write open; a read-only check is
silent.  Repair: any read-write open by QEMU, e.g. `qemu-img amend`.
"""

from qcow2lint import spec
from qcow2lint.records import Header
from qcow2lint.rulekit import unknown_feature_bits

NAME = "autoclear-unknown-bits"
CODE = "Q0203"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag autoclear feature bits outside QEMU's mask."""
    yield from unknown_feature_bits(ctx, "autoclear_features", 2, spec.AUTOCLEAR_MASK)
