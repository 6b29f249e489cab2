"""cluster_bits is outside the range QEMU supports.

Clusters are at least 512 bytes (cluster_bits >= 9, spec) and QEMU supports
at most 2 MiB (cluster_bits <= 21) (spec, "Header").  Tables are not
followed for such an image.  Only a version 2 or 3 header is judged: in
another version (a qcow version 1 file has the same magic and keeps its
mtime where qcow2 keeps cluster_bits) header-bad-version is the one finding.

QEMU: refuses to open the image ("Unsupported cluster size: 2^N").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "header-cluster-bits-range"
CODE = "Q0104"
SEVERITY = "error"
SCOPE = Image
QEMU_REFUSES = ("Unsupported cluster size: 2^N",)


def check(image, ctx):
    """Flag cluster_bits outside 9..21 in a qcow2 header."""
    header = image.header
    if (
        header.magic == spec.QCOW_MAGIC
        and header.version in spec.SUPPORTED_VERSIONS
        and header.bytes_available >= 24
        and not spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS
    ):
        yield Problem(
            20,
            "header.cluster_bits",
            f"cluster_bits {header.cluster_bits} is outside {spec.MIN_CLUSTER_BITS}..{spec.MAX_CLUSTER_BITS} "
            "(512 B to 2 MiB clusters)",
        )
