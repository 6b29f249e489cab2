"""Two L2 entries map the same data cluster, in an image without snapshots.

Without internal snapshots every guest cluster should own its host cluster;
two entries that map one cluster alias two guest ranges, so a write to one
changes the other unless the refcount forces a copy (spec, "Cluster
mapping").  Images with snapshots share clusters by design and are not
judged.  A refcount too low for the sharing is reported by refcount-too-low.

QEMU: silent when the refcount matches the sharing, else `qemu-img check`
reports "ERROR cluster N refcount=1 reference=2".
"""

import numpy as np

from qcow2lint.results import RefcountCheck
from qcow2lint.rulekit import refcount_hits

NAME = "l2-shared-data-cluster"
CODE = "Q0711"
SEVERITY = "info"
SCOPE = RefcountCheck


def check(refcounts, ctx):
    """Note data clusters with more than one reference."""
    yield from refcount_hits(
        ctx,
        np.array(refcounts.shared_data, np.int64),
        lambda c: (
            f"data cluster {c} (offset {c * ctx.cluster_size:#x}) is mapped by {int(refcounts.computed[c])} L2 entries"
        ),
        refs="extra",
        explains=True,
    )
