"""The image uses an external data file but does not name it.

Incompatible bit 2 says guest data lives in an external data file; the
external data file name extension (0x44415441) tells readers where (spec,
"Header extensions", External data file name string).  Without the extension
the image opens only when the data file is given at run time.

QEMU: refuses to open the image for I/O ("'data-file' is required for this
image"), e.g. `qemu-img check` and qemu-io; `qemu-img info` (no I/O) still
opens it.  Repair: `qemu-img amend -o data_file=DATA --image-opts
driver=qcow2,file.filename=IMAGE,data-file.filename=DATA` records the name.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "data-file-bit-without-file"
CODE = "Q0212"
SEVERITY = "error"
SCOPE = Header
QEMU_REFUSES = ("'data-file' is required for this image",)


def check(header, ctx):
    """Flag incompatible bit 2 without a data file name extension."""
    if header.has_data_file and ctx.image.extension(spec.EXT_DATA_FILE) is None:
        yield Problem(
            header.field_offset("incompatible_features"),
            "header.incompatible_features",
            f"incompatible_features {header.incompatible_features:#x} has the external data file bit (bit 2) "
            "set, but there is no external data file name extension (0x44415441)",
        )
