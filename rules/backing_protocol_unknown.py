"""The backing file name starts with a protocol QEMU does not know.

QEMU reads a file name with a ':' before any '/' as "protocol:rest"
(path_has_protocol): "nbd://host/export", "http://...", "file:name", and
looks the protocol up among its drivers.  A plain file name with a colon in
it ("base.qcow:", "disk:1.qcow2") is therefore not a file name for QEMU but
an unknown protocol, and the open fails; "./disk:1.qcow2" is a file.  The
protocol list is QEMU 7.2's (file, host_device, host_cdrom, nbd, http,
https, ftp, ftps, gluster, iscsi, iser, nfs, rbd, ssh, fat, null-co,
null-aio, nvme, blkdebug, blkverify, their "+tcp"/"+unix" variants, and the
json: pseudo-protocol).  Known protocols are backing-file-unsafe-name's
concern; this rule needs no filesystem access and runs under `untrusted`.

QEMU: refuses to open the image ("Could not open backing file: Unknown
protocol 'NAME'").  Repair: `qemu-img rebase -u -b ./NAME -F FMT IMAGE`
(a "./" prefix makes a name with a colon a file name).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import field_root, protocol_prefix, qemu_name, shown

NAME = "backing-protocol-unknown"
CODE = "Q0316"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Could not open backing file: Unknown protocol 'NAME'",)


def check(header, ctx):
    """Flag a backing file name whose protocol prefix QEMU does not know."""
    name = qemu_name(ctx.image.backing_file_name or b"")
    if not header.backing_file_offset or not name:
        return
    protocol = protocol_prefix(name)
    if protocol is None:
        return
    # QEMU copies the prefix into a 128-byte buffer before looking it up.
    if protocol[: spec.QEMU_PROTOCOL_NAME_MAX] not in spec.QEMU_PROTOCOLS:
        # The root of what else is said of this name's prefix (backing-file-unsafe-name).
        yield field_root(
            Problem(
                header.backing_file_offset,
                "backing_file_name",
                f"backing file {shown(name, 256)} starts with the protocol {shown(protocol[:64])}, "
                "which QEMU does not know",
            ),
            len(name),
        )
