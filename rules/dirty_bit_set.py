"""The dirty bit is set: the refcounts may not match the metadata.

Incompatible feature bit 0 (dirty) says the refcounts may be inconsistent
and must be rebuilt before the image is written (spec, "Header",
incompatible_features bit 0).  QEMU sets it while an image with lazy
refcounts is open for writing, so after a crash it remains set.

A dirty bit over refcounts that really mismatch is an error, but the
refcount comparison belongs to the refcount rules (spec, "Host cluster
management"), which report each mismatch themselves, so this rule only
reports the bit, as a warning.  In an image without lazy refcounts
(compatible bit 0 clear) the dirty bit is dirty-without-lazy-refcounts'
finding, not this rule's: one bit, one finding.

QEMU: a read-write open repairs the refcounts and clears the bit (if that
fails: "Could not repair dirty image"); a read-only `qemu-img check`
reports the stale refcounts as corruptions or leaks but never mentions the
bit; `qemu-img info` shows "dirty-flag": true.  Repair: `qemu-img check -r
all`, or any read-write open (e.g. `qemu-io -c quit`).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "dirty-bit-set"
CODE = "Q0204"
SEVERITY = "warning"
SCOPE = Header
REPRO = """\
qemu-img create -f qcow2 -o lazy_refcounts=on repro.qcow2 1M
# qemu-io is killed (as by a crash) while the image is open for writing
qemu-io -c 'write 0 64k' -c 'sigraise 9' repro.qcow2
"""


def check(header, ctx):
    """Flag incompatible feature bit 0 in an image with lazy refcounts."""
    dirty = header.incompatible_features & spec.INCOMPAT_DIRTY
    if header.version >= 3 and dirty and header.compatible_features & spec.COMPAT_LAZY_REFCOUNTS:
        yield Problem(
            header.field_offset("incompatible_features"),
            "header.incompatible_features",
            f"incompatible_features {header.incompatible_features:#x} has the dirty bit (bit 0) set: "
            "the refcounts may be stale",
        )
