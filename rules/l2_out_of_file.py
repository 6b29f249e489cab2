"""An L1 entry points at an L2 table past the end of the file.

Every L2 table an L1 entry names must lie inside the image file (spec,
"Cluster mapping").  As QEMU's check does, a table is out of the file when
it ends one cluster or more past the end; shorter overruns read as zeros.
Applies to the active L1 and to every snapshot's L1 table.
(l2-table-out-of-file, listed in docs/rules.md among the names that are not
separate rules, is the same condition and is reported here.)

QEMU: `qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more"); reads of the
guest range return zeros.  Repair: the file was cut short: copy it again.
"""

import numpy as np

from qcow2lint import spec
from qcow2lint.records import L1Table
from qcow2lint.rulekit import entry_hits_at, out_of_file_table, u64

NAME = "l2-out-of-file"
CODE = "Q0603"
SEVERITY = "error"
SCOPE = L1Table


def check(table, ctx):
    """Flag L1 entries whose L2 table starts at or past the end of the file."""
    offsets = table.entries & u64(spec.L1E_OFFSET_MASK)
    yield from entry_hits_at(
        ctx,
        table,
        np.flatnonzero((offsets != 0) & (offsets >= u64(ctx.file_size))),
        lambda e: f"L2 table at {e & spec.L1E_OFFSET_MASK:#x} lies past the end of the file ({ctx.file_size} bytes)",
        # the table QEMU cannot read: what is said of it and its cluster
        # follows, and the table it should be, which nothing names, leaks
        hints=lambda e: {
            "explains": ((e & spec.L1E_OFFSET_MASK) >> ctx.header.cluster_bits,) * 2,
            **out_of_file_table(e & spec.L1E_OFFSET_MASK, ctx.cluster_size, ctx.header.l2_entries, "l2", ctx),
        },
    )
