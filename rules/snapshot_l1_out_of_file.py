"""A snapshot's L1 table ends one cluster or more past the end of the file.

Each snapshot's L1 table (l1_size * 8 bytes at its l1_table_offset) must lie
inside the file (spec, "Snapshots").  As in QEMU's check, a table that ends
less than one cluster past the end of the file is left to file-truncated, which reports
any cut: that part reads as zeros.

QEMU: `qemu-img check` counts a corruption ("ERROR: counting reference for
region exceeding the end of the file by one cluster or more: offset ...
size ..."); applying the snapshot (`qemu-img snapshot -a`) would bring back
a disk whose missing L1 entries read as zeros.  Repair: delete the snapshot
(`qemu-img snapshot -d ID IMG`), then `qemu-img check -r leaks`.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import SnapshotEntry
from qcow2lint.rulekit import ends_out_of_file, out_of_file_table

NAME = "snapshot-l1-out-of-file"
CODE = "Q1306"
SEVERITY = "error"
SCOPE = SnapshotEntry


def check(entry, ctx):
    """Flag a snapshot L1 table that ends a cluster or more past EOF."""
    size = entry.l1_size * spec.L1_ENTRY_SIZE
    # A table QEMU refuses as too large is reported by snapshot-l1-too-large alone.
    if size <= spec.MAX_L1_SIZE and ends_out_of_file(entry.l1_table_offset, size, ctx):
        end = entry.l1_table_offset + size
        yield Problem(
            entry.file_offset,
            f"{entry.path}.l1_table_offset",
            f"snapshot L1 table {entry.l1_table_offset:#x}..{end:#x} (l1_size {entry.l1_size}) ends "
            f"{end - ctx.file_size} bytes past the end of the file ({ctx.file_size} bytes)",
            # wholly past the end, its offset is wrong: what is said of it
            # follows, and the table it should be, which nothing names, leaks
            **out_of_file_table(entry.l1_table_offset, size, entry.l1_size, "l1", ctx),
        )
