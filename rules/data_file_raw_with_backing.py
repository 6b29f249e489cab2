"""A raw external data file is combined with a backing file.

With autoclear bit 1 (raw external data) the data file must read as the
guest disk on its own, so the image cannot have a backing file (spec,
"Header", backing_file_offset note and autoclear bit 1): reads of
unallocated clusters would come from the backing file through qcow2 but from
the raw file's zeros elsewhere.

QEMU: open does not check it; `qemu-img create` and `qemu-img rebase`
refuse the combination ("Backing file and data-file-raw cannot be used at
the same time").  Repair: `qemu-img rebase -u -b '' IMAGE` drops the
backing file, or `qemu-img amend -o data_file_raw=off` keeps it and makes
the data file qcow2-only.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "data-file-raw-with-backing"
CODE = "Q0214"
SEVERITY = "warning"
SCOPE = Header


def check(header, ctx):
    """Flag autoclear bit 1 together with a backing file offset."""
    if header.version >= 3 and header.autoclear_features & spec.AUTOCLEAR_DATA_FILE_RAW and header.backing_file_offset:
        yield Problem(
            header.field_offset("autoclear_features"),
            "header.autoclear_features",
            f"autoclear_features {header.autoclear_features:#x} has the raw external data bit (bit 1) set, but "
            f"the image has a backing file (backing_file_offset {header.backing_file_offset:#x})",
        )
