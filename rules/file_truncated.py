"""The file ends before the structures it holds: it was cut short.

Every table, refcount block and directory the header or another table points
to must be inside the file.  This rule judges the file as a whole: one
finding that says how many structures the reader could not read because they
lie past the end of the file, and how far the farthest reaches.  The rules
for each structure (l1-out-of-file, l2-out-of-file, refblock-out-of-file,
bitmap-table-out-of-file, ...) say which.  QEMU tolerates a structure that
ends less than one cluster past the end of the file (it reads zeros), so by
default only overruns of one cluster or more count; set `tolerate-partial:
false` to count any overrun.

QEMU: `qemu-img check` counts a corruption per structure ("ERROR: counting
reference for region exceeding the end of the file by one cluster or
more"); reads of the missing part return zeros.  Repair: the file was cut
short (an interrupted copy or download): fetch or copy it again.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "file-truncated"
CODE = "Q1502"
SEVERITY = "error"
SCOPE = Image
OPTIONS = {"tolerate-partial": True}


def check(image, ctx):
    """Report the structures the reader found past the end of the file."""
    if not image.readable:
        return
    minimum = 1 if not ctx.options["tolerate-partial"] else ctx.cluster_size
    cut = [problem for problem in image.problems if problem.past_eof >= minimum]
    if cut:
        farthest = max(cut, key=lambda problem: problem.offset + problem.length)
        yield Problem(
            image.file_size, "file",
            f"the file ends at {image.file_size:#x} but {len(cut)} structure(s) lie past it; the farthest, "
            f"{farthest.structure}, ends at {farthest.offset + farthest.length:#x}",
        )  # fmt: skip
