"""The raw external data bit is set in an image without an external data file.

Autoclear bit 1 (raw external data) says the external data file is a valid
raw image; it is only allowed together with incompatible bit 2 (external
data file) (spec, "Header", autoclear_features bit 1 -- the spec text says
"incompatible feature bit 1", an erratum for bit 2).

QEMU: refuses to open the image for I/O ("data-file-raw requires a data
file"), e.g. `qemu-img check` and qemu-io; `qemu-img info` still opens
it.  Repair: clear autoclear bit 1 by hand.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "data-file-raw-without-data-file"
CODE = "Q0213"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("data-file-raw requires a data file",)


def check(header, ctx):
    """Flag autoclear bit 1 without incompatible bit 2."""
    if header.version >= 3 and header.autoclear_features & spec.AUTOCLEAR_DATA_FILE_RAW and not header.has_data_file:
        yield Problem(
            header.field_offset("autoclear_features"),
            "header.autoclear_features",
            f"autoclear_features {header.autoclear_features:#x} has the raw external data bit (bit 1) set, but "
            f"incompatible_features {header.incompatible_features:#x} has no external data file (bit 2)",
        )
