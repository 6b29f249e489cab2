"""The header sets incompatible feature bits QEMU does not know.

An incompatible feature bit that a reader does not know means "do not open
this image" (spec, "Header", incompatible_features).  QEMU knows bits 0-4
(dirty, corrupt, external data file, compression type, extended L2: mask
0x1f).  Names come from the image's feature name table if any.

QEMU: refuses to open the image ("Unsupported qcow2 feature(s): ...Unknown
incompatible feature: <mask>").  Repair: open it with the program that set
the bit, or convert the data with a tool that understands the feature.
"""

from qcow2lint import spec
from qcow2lint.records import Header
from qcow2lint.rulekit import unknown_feature_bits

NAME = "incompat-unknown-bits"
CODE = "Q0201"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Unsupported qcow2 feature(s): Unknown incompatible feature: N",)


def check(header, ctx):
    """Flag incompatible feature bits outside QEMU's mask."""
    yield from unknown_feature_bits(ctx, "incompatible_features", 0, spec.INCOMPAT_MASK)
