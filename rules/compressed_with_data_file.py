"""A compressed cluster in an image with an external data file.

Guest data in an external data file is stored raw at its guest offset, so
compressed clusters are impossible there (spec, "Header", incompatible bit
2, External data file).  This is also the condition of data-file-compressed,
which docs/rules.md lists among the names that are not separate rules.

QEMU: `qemu-img check` counts a corruption ("ERROR compressed cluster N
with data file"); guest reads fail ("Compressed cluster entry found in
image with external data file").
"""

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits

NAME = "compressed-with-data-file"
CODE = "Q0902"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag compressed entries when incompatible bit 2 (data file) is set."""
    if batch.data_file:
        yield from l2_hits(
            ctx,
            batch,
            predicates.compressed_entries(batch),
            lambda e, _: f"compressed L2 entry {e:#x} in an image whose data lives in an external data file",
        )
