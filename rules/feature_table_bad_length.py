"""The feature name table's length is not a multiple of 48.

The feature name table is a list of 48-byte entries (type, bit number,
46-byte name) (spec, "Feature name table"), so its length must be a multiple
of 48.  The bytes of a last, partial entry are ignored here.

QEMU: does not validate the table; it only uses it to name unknown
incompatible bits in its refusal message.  Repair: a read-write header
update (e.g. `qemu-img amend -o compat=1.1`) writes QEMU's own table.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "feature-table-bad-length"
CODE = "Q0308"
SEVERITY = "warning"
SCOPE = HeaderExtension


def check(ext, ctx):
    """Flag a feature name table whose length is not a multiple of 48."""
    size = spec.FEATURE_TABLE_ENTRY_SIZE
    if ext.magic == spec.EXT_FEATURE_TABLE and ext.length % size:
        yield Problem(
            ext.field_offset("length"),
            f"{ext.path}.length",
            f"feature name table length {ext.length} is not a multiple of {size}: {ext.length // size} entries "
            f"and {ext.length % size} bytes left over",
        )
