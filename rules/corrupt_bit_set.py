"""The corrupt bit is set: QEMU found corrupted metadata in this image.

Incompatible feature bit 1 (corrupt) means the metadata is corrupted and the
image must not be written until it is repaired (spec, "Header",
incompatible_features bit 1).  QEMU sets it when it detects a corruption at
run time (`qcow2_signal_corruption`).

QEMU: refuses read-write opens ("qcow2: Image is corrupt; cannot be opened
read/write"); read-only opens work; `qemu-img check` does not report the
bit ("No errors were found" is possible); `qemu-img info` shows
"corrupt": true.  Repair: `qemu-img check -r all` clears it once no errors
remain; convert the data to a new image if the repair cannot fix them.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "corrupt-bit-set"
CODE = "Q0206"
SEVERITY = "error"
SCOPE = Header
STRICTER_THAN_QEMU = (
    "QEMU itself set the bit when it found corrupted metadata, and refuses to open the "
    "image read-write until it is repaired; `qemu-img check` does not report the bit."
)
REPRO = """\
qemu-img create -f qcow2 repro.qcow2 1M
# incompatible_features is bytes 72..79 (big-endian): set bit 1
qemu-io -f raw -c 'write -P 2 79 1' repro.qcow2
"""


def check(header, ctx):
    """Flag incompatible feature bit 1."""
    if header.version >= 3 and header.incompatible_features & spec.INCOMPAT_CORRUPT:
        yield Problem(
            header.field_offset("incompatible_features"),
            "header.incompatible_features",
            f"incompatible_features {header.incompatible_features:#x} has the corrupt bit (bit 1) set: "
            "QEMU found corrupted metadata and refuses read-write opens",
        )
