"""A structure the image refers to lies past the end of the file.

Every table, refcount block and directory the header or another table
points to must be inside the file (catalogue §2.15).  The reader reports
each structure it could not read whole.  QEMU tolerates a structure that
ends less than one cluster past the end of the file (it reads zeros), so by
default only overruns of one cluster or more are reported; set
`tolerate-partial: false` to report any overrun.

QEMU: `qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more"); reads of the
missing part return zeros.  Repair: the file was cut short: fetch or copy
it again.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import ReadProblem

NAME = "file-truncated"
CODE = "Q1502"
SEVERITY = "error"
SCOPE = ReadProblem
OPTIONS = {"tolerate-partial": True}


def check(problem, ctx):
    """Report what the reader could not read."""
    if problem.past_eof >= ctx.cluster_size or not ctx.options["tolerate-partial"]:
        yield Problem(problem.offset, problem.structure, problem.message)
