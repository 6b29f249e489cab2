"""An allocated cluster in an image with a data file lacks the COPIED flag.

Clusters in an external data file always have refcount 1, so every allocated
L2 entry must set COPIED (bit 63) (spec, "Header", incompatible bit 2,
External data file).

QEMU: `qemu-img check` counts a corruption ("ERROR OFLAG_COPIED data
cluster: l2_entry=... refcount=1").  Repair: `qemu-img check -r all`.
"""

import numpy as np

from qcow2lint import spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "data-file-copied-missing"
CODE = "Q1002"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag entries with a host offset but no COPIED flag, with a data file."""
    if not batch.data_file:
        return
    plain = (batch.entries & u64(spec.OFLAG_COMPRESSED | spec.OFLAG_COPIED)) == 0
    yield from l2_hits(
        ctx,
        batch,
        np.flatnonzero(plain & (batch.host_offsets != 0)),
        lambda e, _: f"L2 entry {e:#x} maps data file offset {e & spec.L2E_OFFSET_MASK:#x} without COPIED (bit 63)",
    )
