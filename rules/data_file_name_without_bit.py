"""An external data file is named, but the image does not use one.

The external data file name extension (0x44415441) only means something when
incompatible bit 2 (external data file) is set (spec, "Header extensions",
External data file name string).  Without the bit the name is dead weight,
or the bit was lost: then the L2 entries point into a file that is not read.

QEMU: ignores the extension and reads guest data from the image file
itself, so L2 entries written for the data file look like data at those
offsets of the image file, and entries with host offset 0 look
unallocated.  Repair: if the image never used a data file, convert it to
drop the extension; otherwise set incompatible bit 2 again by hand.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import shown

NAME = "data-file-name-without-bit"
CODE = "Q0215"
SEVERITY = "warning"
SCOPE = HeaderExtension


def check(ext, ctx):
    """Flag a data file name extension without incompatible bit 2."""
    if ext.magic == spec.EXT_DATA_FILE and not ctx.header.has_data_file:
        yield Problem(
            ext.file_offset,
            ext.path,
            f"external data file name {shown(ext.payload.name)} is set, but incompatible_features "
            f"{ctx.header.incompatible_features:#x} has no external data file bit (bit 2)",
        )
