"""A cluster in the external data file is not at its guest offset.

With an external data file, guest cluster N lives at host offset N *
cluster_size of the data file: the L2 entry's host offset must equal the
guest offset (spec, "Header", incompatible bit 2, External data file).
Tables that only snapshots reference are not judged (their guest offsets are
not the active disk's).

QEMU: `qemu-img check` is silent, but guest I/O fails ("External data file
host cluster offset 0x... does not match guest cluster offset: 0x...").
"""

import numpy as np

from qcow2lint import predicates
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits_at

NAME = "data-file-offset-mismatch"
CODE = "Q1001"
SEVERITY = "error"
SCOPE = L2Tables
STRICTER_THAN_QEMU = (
    "The specification places every cluster of an external data file at its guest offset; "
    "guest I/O to a cluster elsewhere fails. `qemu-img check` does not compare the two "
    "offsets."
)


def check(batch, ctx):
    """Flag allocated entries whose host offset differs from the guest offset."""
    if not batch.data_file or batch.first_l1 is None:
        return
    columns = batch.entries.shape[1]
    bits = ctx.header.cluster_bits
    flat = np.flatnonzero(predicates.allocated(batch))
    l1_index = batch.first_l1[flat // columns]
    guest = (l1_index.astype(np.uint64) << np.uint64(bits + columns.bit_length() - 1)) + (
        (flat % columns).astype(np.uint64) << np.uint64(bits)
    )
    host = batch.host_offsets.ravel()
    wrong = (l1_index >= 0) & (host[flat] != guest)
    expected = dict(zip(flat[wrong].tolist(), guest[wrong].tolist()))
    yield from l2_hits_at(
        ctx,
        batch,
        flat[wrong],
        lambda i: f"host offset {int(host[i]):#x} in the data file does not match guest offset {expected[i]:#x}",
    )
