"""The backing file name is longer than 1023 bytes or leaves cluster 0.

backing_file_size must not exceed 1023, and the name must end inside cluster
0 (spec, "Header", backing_file_size).  Only judged when the image has a
backing file (backing_file_offset not 0) whose offset is inside cluster 0
(backing-offset-out-of-cluster reports the others) and cluster_bits is in
QEMU's range.

QEMU: refuses to open the image ("Backing file name too long").  Repair:
restore the real name length by hand; if the name is lost,
`qemu-img rebase -u -b BACKING -F FMT` after zeroing offset and size.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import cluster_bits_supported

NAME = "backing-name-too-long"
CODE = "Q0311"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Backing file name too long",)


def check(header, ctx):
    """Flag a backing file name over 1023 bytes or past the end of cluster 0."""
    offset, size = header.backing_file_offset, header.backing_file_size
    if not cluster_bits_supported(header) or not 0 < offset <= header.cluster_size:
        return
    if size > spec.MAX_BACKING_FILE_NAME:
        why = f"exceeds {spec.MAX_BACKING_FILE_NAME} bytes"
    elif offset + size > header.cluster_size:
        why = f"runs from {offset:#x} to {offset + size:#x}, past the end of cluster 0 at {header.cluster_size:#x}"
    else:
        return
    yield Problem(
        header.field_offset("backing_file_size"), "header.backing_file_size", f"backing_file_size {size} {why}"
    )
