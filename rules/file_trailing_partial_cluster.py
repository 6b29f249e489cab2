"""The file size is not a multiple of the cluster size.

Every structure in a qcow2 file is cluster-aligned, so the file normally
ends on a cluster boundary.  A partial last cluster is legal and common:
`qemu-img create` ends the file right after the L1 table (a fresh 16 MiB
image is 3 clusters and 8 bytes), and compressed clusters are written with
sector granularity.

Off by default (a legal layout `qemu-img create` and `convert` write); the
`pedantic` preset enables it.

QEMU: silent; reads past the end of the file return zeros and the next
cluster allocation starts at the next cluster boundary.  Repair: none
needed.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "file-trailing-partial-cluster"
CODE = "Q1501"
SEVERITY = "info"
SCOPE = Image
DEFAULT_ENABLED = False


def check(image, ctx):
    """Report a file that ends inside a cluster."""
    tail = image.file_size % ctx.cluster_size
    if tail:
        yield Problem(
            image.file_size - tail,
            "file",
            f"file size {image.file_size} is not a multiple of the cluster size {ctx.cluster_size}: "
            f"the last cluster holds {tail} bytes",
        )
