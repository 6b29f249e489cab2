"""The image has a backing file offset but an empty backing file name.

backing_file_offset not 0 says the image has a backing file, whose name is
backing_file_size bytes long (spec, "Header", backing_file_offset).  A size
of 0 names no file.

QEMU: treats the image as having no backing file (tested: `qemu-img info`
shows none) and still ends the extension walk at backing_file_offset.
Repair: `qemu-img rebase -u -b '' IMAGE` to drop the backing file, or
`qemu-img rebase -u -b BACKING -F FMT IMAGE` to name the right one.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "backing-name-empty"
CODE = "Q0313"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag backing_file_offset set with backing_file_size 0."""
    if header.backing_file_offset and header.backing_file_size == 0:
        yield Problem(
            header.field_offset("backing_file_size"),
            "header.backing_file_size",
            f"backing_file_offset is {header.backing_file_offset:#x}, but backing_file_size is 0: "
            "the backing file name is empty",
        )
