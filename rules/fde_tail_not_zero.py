"""The unused tail of the encryption area's last cluster is not zero.

The length in the full disk encryption header pointer is the number of bytes
actually used; the area is allocated in whole clusters and the bytes from
offset + length up to the next cluster boundary must be zero (spec, "Full
disk encryption header pointer").

QEMU: does not check it.  Non-zero bytes there are leftovers of other data
or a sign that the length field is wrong.  Repair: convert the image
(`qemu-img convert` with the same encryption options) or zero the tail.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import EncryptionArea

NAME = "fde-tail-not-zero"
CODE = "Q0407"
SEVERITY = "warning"
SCOPE = EncryptionArea


def check(area, ctx):
    """Flag non-zero bytes after the used part of the encryption area."""
    nonzero = [i for i, byte in enumerate(area.tail) if byte]
    if nonzero:
        start = area.file_offset + area.length
        first = start + nonzero[0]
        yield Problem(
            first,
            "encryption.tail",
            f"{len(nonzero)} of the {len(area.tail)} bytes {start:#x}..{start + len(area.tail):#x} after the "
            f"{area.length}-byte encryption area are not zero (first at {first:#x}: {area.tail[nonzero[0]]:#04x})",
        )
