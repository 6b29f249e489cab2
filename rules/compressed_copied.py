"""A compressed L2 entry has the COPIED flag set.

Compressed clusters are never written in place, so COPIED (bit 63) must be 0
in a compressed descriptor (spec, "Cluster mapping", Compressed Clusters
Descriptor).

QEMU: `qemu-img check` counts a corruption ("ERROR: coffset=0x...: copied
flag must never be set for compressed clusters").  Repair:
`qemu-img check -r all`.
"""

from qcow2lint import predicates, spec
from qcow2lint.records import L2Tables
from qcow2lint.rulekit import l2_hits, u64

NAME = "compressed-copied"
CODE = "Q0901"
SEVERITY = "error"
SCOPE = L2Tables


def check(batch, ctx):
    """Flag compressed entries with COPIED set."""
    flat = predicates.compressed_entries(batch)
    hits = flat[(batch.entries.ravel()[flat] & u64(spec.OFLAG_COPIED)) != 0]
    yield from l2_hits(
        ctx,
        batch,
        hits,
        lambda e, _: f"compressed L2 entry {e:#x} sets COPIED (bit 63), which compressed clusters never have",
    )
