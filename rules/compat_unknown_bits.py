"""The header sets compatible feature bits QEMU does not know.

Unknown compatible feature bits may be ignored by a reader (spec, "Header",
compatible_features).  QEMU knows bit 0 (lazy refcounts).  Reported for
information: some other program wrote the image.

QEMU: silent.
"""

from qcow2lint import spec
from qcow2lint.records import Header
from qcow2lint.rulekit import unknown_feature_bits

NAME = "compat-unknown-bits"
CODE = "Q0202"
SEVERITY = "info"
SCOPE = Header


def check(header, ctx):
    """Flag compatible feature bits outside QEMU's mask."""
    yield from unknown_feature_bits(ctx, "compatible_features", 1, spec.COMPAT_MASK)
