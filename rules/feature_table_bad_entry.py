"""A feature name table entry has an invalid type or bit number.

Each 48-byte entry names one feature bit: type 0 (incompatible), 1
(compatible) or 2 (autoclear), and a bit number 0..63 (spec, "Feature name
table").  An entry outside those ranges names no feature.

QEMU: does not validate the table; such an entry is never used.  Repair:
a read-write header update (e.g. `qemu-img amend -o compat=1.1`) writes
QEMU's own table.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "feature-table-bad-entry"
CODE = "Q0309"
SEVERITY = "warning"
SCOPE = HeaderExtension


def check(ext, ctx):
    """Flag every entry with type > 2 or bit > 63."""
    if ext.magic != spec.EXT_FEATURE_TABLE:
        return
    for index, entry in enumerate(ext.payload.entries):
        where = f"{ext.path}.entries[{index}]"
        if entry.type not in spec.FEATURE_TYPES:
            yield Problem(
                entry.file_offset,
                f"{where}.type",
                f"feature '{entry.label}' (bit {entry.bit}) has type {entry.type}; valid types are 0 (incompatible), "
                "1 (compatible) and 2 (autoclear)",
            )
        elif entry.bit > 63:
            yield Problem(
                entry.file_offset + 1,
                f"{where}.bit",
                f"{spec.FEATURE_TYPES[entry.type]} feature '{entry.label}' has bit number {entry.bit}; "
                "valid bits are 0..63",
            )
