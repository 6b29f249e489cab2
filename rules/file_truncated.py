"""The file ends before the structures it holds: it was cut short.

Every table, refcount block and directory the header or another table points
to must be inside the file.  This rule judges the file as a whole: one
finding that says how many structures the reader could not read whole
because the end of the file cuts them, and how far the farthest reaches.
Any cut counts, even by one byte: QEMU reads the missing bytes as zeros, so
the entries there change (an L1 entry cut after its first byte keeps the
COPIED flag and loses its offset, and `qemu-img check` then walks cluster 0,
the header, as an L2 table).  The rules for each structure
(l1-out-of-file, l2-out-of-file, refblock-out-of-file,
bitmap-table-out-of-file, ...) say which, as `qemu-img check` counts them:
only overruns of one cluster or more.  Set `tolerate-partial: true` to
count only those here too.

QEMU: reads of the missing part return zeros (the qcow2lint analysis
reads them so too); `qemu-img check` counts a corruption per structure that
ends one cluster or more past the end ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more") and judges
the entries it read as zeros as it finds them.  Repair: the file was cut
short (an interrupted copy or download): fetch or copy it again.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "file-truncated"
CODE = "Q1502"
SEVERITY = "error"
SCOPE = Image
STRICTER_THAN_QEMU = (
    "The missing bytes held metadata or data that is gone: QEMU reads zeros in their "
    "place. `qemu-img check` counts only structures that end a whole cluster or more past "
    "the end of the file."
)
OPTIONS = {"tolerate-partial": False}


def check(image, ctx):
    """Report the structures the reader found past the end of the file."""
    minimum = 1 if not ctx.options["tolerate-partial"] else ctx.cluster_size
    cut = [problem for problem in image.problems if problem.past_eof >= minimum]
    if cut:
        farthest = max(cut, key=lambda problem: problem.offset + problem.length)
        yield Problem(
            image.file_size,
            "file",
            f"the file ends at {image.file_size:#x} but {len(cut)} structure(s) lie past it; the farthest, "
            f"{farthest.structure}, ends at {farthest.offset + farthest.length:#x}",
            # One structure past the end is about that structure: when a root
            # cause judges it unusable (its offset is wrong), the cut follows.
            about=cut[0].offset if len(cut) == 1 else None,
        )
