"""The snapshot table runs past the end of the file.

The nb_snapshots entries from snapshot_offset, with their extra data, ids
and names, must lie inside the file (spec, "Snapshots").  The table's end is
computed as QEMU reads it: after the last entry's name (without the padding
after it), and entries past the end of the file count as 40 zero bytes each,
which is what QEMU reads there.

QEMU: reads the missing bytes as zeros, so names and ids come out garbled
and, in a v3 image, the missing entries look incomplete (`qemu-img check`:
"ERROR snapshot table entry N is incomplete"); a table that ends one
cluster or more past the end of the file is also counted as "ERROR:
counting reference for region exceeding the end of the file by one cluster
or more".  Repair: the file was cut short or nb_snapshots / snapshot_offset
is damaged; fetch the image again, or convert it (`qemu-img convert -O
qcow2` keeps the active disk and drops the snapshots).

Option `tolerate-partial` (default false): when true, report only a table
that ends one cluster or more past the end of the file, as `qemu-img check`
does.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotTable
from qcow2lint.rulekit import out_of_file_table

NAME = "snapshot-table-out-of-file"
CODE = "Q1313"
SEVERITY = "error"
SCOPE = SnapshotTable
STRICTER_THAN_QEMU = (
    "The file ends inside the snapshot table: QEMU reads zeros there, so snapshot names, "
    "ids and L1 tables come out garbled. `qemu-img check` counts only tables that end a "
    "whole cluster or more past the end of the file."
)
OPTIONS = {"tolerate-partial": False}
ZERO_ENTRY = spec.SNAPSHOT_HEADER_SIZE  # an entry past the end of the file reads as a zero header


def check(table, ctx):
    """Flag a snapshot table whose end, as QEMU reads it, is past EOF."""
    if table.too_big is not None:  # QEMU stops at the size (snapshot-table-too-big)
        return
    end = table.file_offset
    if table.entries:
        last = table.entries[-1]
        end = last.file_offset + last.used_size
    unread = min(table.nb_snapshots, spec.MAX_SNAPSHOTS) - len(table.entries)
    if unread > 0:
        end = spec.round_up(end, 8) + ZERO_ENTRY * unread
    overrun = end - ctx.file_size
    if overrun >= (ctx.cluster_size if ctx.options["tolerate-partial"] else 1):
        yield Problem(
            ctx.header.field_offset("snapshot_offset"),
            "header.snapshot_offset",
            f"the snapshot table at {table.file_offset:#x} (nb_snapshots {table.nb_snapshots}) ends at {end:#x}, "
            f"{overrun} bytes past the end of the file ({ctx.file_size} bytes)"
            + (f"; {unread} of its entries lie wholly past it" if unread > 0 else ""),
            about=table.file_offset,
            # wholly past the end, its offset is wrong: what is said of it
            # follows, and the table it should be, which nothing names, leaks
            **out_of_file_table(table.file_offset, end - table.file_offset, table.nb_snapshots, "snapshots", ctx),
        )
