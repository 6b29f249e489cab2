"""The snapshot table is larger than QEMU allows.

QEMU limits the snapshot table to QCOW_MAX_SNAPSHOTS_SIZE = 64 MiB.  The
size is counted as QEMU counts it, over the entries the file holds: each
entry is 40 bytes plus its extra data, id and name, and every entry but the
first starts at a multiple of 8.  The finding points at the first entry that
crosses the limit.

QEMU: refuses to open the image ("Snapshot table is too big", with "You can
force-remove all N overhanging snapshots with qemu-img check -r all").
Repair: `qemu-img check -r all` drops the entries from that one on
("Discarding N overhanging snapshots (snapshot table is too big)").
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotTable

NAME = "snapshot-table-too-big"
CODE = "Q1303"
SEVERITY = "error"
SCOPE = SnapshotTable
QEMU_REFUSES = ("Snapshot table is too big",)


def check(table, ctx):
    """Flag the entry with which the snapshot table grows past 64 MiB."""
    # The reader keeps no entry of such a table (nor their L1 tables), as
    # QEMU keeps none: it records the entry that crosses the limit.
    if table.too_big is not None:
        entry = table.too_big
        yield Problem(
            entry.file_offset,
            entry.path,
            f"the snapshot table reaches {table.too_big_length} bytes with entry {entry.index} of "
            f"{table.nb_snapshots}; QEMU allows at most {spec.MAX_SNAPSHOTS_SIZE} bytes",
        )
        return
    length = 0
    for entry in table.entries:
        length = spec.round_up(length, 8) + 40 + entry.extra_data_size + entry.id_str_size + entry.name_size
        if length > spec.MAX_SNAPSHOTS_SIZE:
            yield Problem(
                entry.file_offset,
                entry.path,
                f"the snapshot table reaches {length} bytes with entry {entry.index} of {table.nb_snapshots}; "
                f"QEMU allows at most {spec.MAX_SNAPSHOTS_SIZE} bytes",
            )
            return
