"""The snapshot table offset is not cluster-aligned or out of range.

snapshot_offset must be a multiple of the cluster size (spec, "Header").
QEMU validates it whatever nb_snapshots says, even 0, and also refuses an
offset so large that offset + nb_snapshots * 40 passes 2^63 - 1
(qcow2_validate_table).

QEMU: refuses to open the image ("Snapshot table offset invalid");
`qemu-img check` fails ("ERROR snapshot table offset invalid", "Check
failed: Invalid argument").  Repair: none with qemu-img; with no snapshots,
writing 0 to snapshot_offset (bytes 64..71) restores the image.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import cluster_bits_supported, misaligned

NAME = "misaligned-snapshot-table"
CODE = "Q0510"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("Snapshot table offset invalid",)
INT64_MAX = (1 << 63) - 1


def check(header, ctx):
    """Flag a snapshot_offset QEMU's table validation refuses."""
    if not cluster_bits_supported(header):  # QEMU refuses the cluster size first
        return
    offset = header.snapshot_offset
    # A count QEMU refuses first ("Snapshot table too large") is snapshot-count-too-large's.
    length = min(header.nb_snapshots, spec.MAX_SNAPSHOTS) * spec.SNAPSHOT_HEADER_SIZE
    if misaligned(offset, header.cluster_size):
        reason = f"is not a multiple of the cluster size {header.cluster_size:#x}"
    elif offset > INT64_MAX - length:
        reason = f"plus the table's {length} bytes passes 2^63 - 1"
    else:
        return
    # The table read at the invalid offset: what is said about it follows.
    table = ctx.image.snapshots
    end = offset + length
    if table is not None and table.entries:
        end = max(end, table.entries[-1].file_offset + table.entries[-1].size)
    yield Problem(
        header.field_offset("snapshot_offset"),
        "header.snapshot_offset",
        f"the snapshot table offset {offset:#x} {reason} (nb_snapshots {header.nb_snapshots})",
        covers=(offset, end),
        # the snapshots of the table at the aligned offset below, which QEMU
        # does not read: their L1 tables, L2 tables and data leak
        lost=(offset - offset % header.cluster_size, header.nb_snapshots, "snapshots"),
    )
