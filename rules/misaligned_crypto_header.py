"""The encryption header offset is not cluster-aligned.

The offset in the full disk encryption header pointer extension must be
cluster-aligned (spec, "Full disk encryption header pointer").

QEMU: refuses to open the image ("Encryption header offset 'N' is not a
multiple of cluster size 'M'").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import misaligned

NAME = "misaligned-crypto-header"
CODE = "Q0404"
SEVERITY = "error"
SCOPE = HeaderExtension
QEMU_REFUSES = ("Encryption header offset 'N' is not a multiple of cluster size 'N'",)


def check(ext, ctx):
    """Flag an encryption header pointer whose offset is misaligned."""
    if ext.magic == spec.EXT_CRYPTO_HEADER and misaligned(ext.payload.offset, ctx.cluster_size):
        yield Problem(
            ext.data_offset,
            f"{ext.path}.offset",
            f"encryption header offset {ext.payload.offset:#x} is not a multiple of the cluster size "
            f"{ctx.cluster_size:#x}",
        )
