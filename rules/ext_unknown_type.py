"""A header extension has a type QEMU does not know.

Known types are backing file format (0xe2792aca), feature name table
(0x6803f857), bitmaps (0x23852875), full disk encryption header pointer
(0x0537be77) and external data file name (0x44415441) (spec, "Header
extensions").  Unknown extensions are legal: a reader must ignore them
(incompatible features use the feature bits, not extensions).

QEMU: keeps them and writes them back unchanged on a header update.
Repair: none needed; `qemu-img convert` drops them.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension

NAME = "ext-unknown-type"
CODE = "Q0305"
SEVERITY = "info"
SCOPE = HeaderExtension


def check(ext, ctx):
    """Flag an extension of an unknown type."""
    if ext.magic not in spec.EXT_NAMES:
        yield Problem(
            ext.file_offset,
            ext.path,
            f"header extension type {ext.magic:#010x} ({ext.length} bytes) at {ext.file_offset:#x} "
            "is not a type QEMU knows",
        )
