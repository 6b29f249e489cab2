"""A known header extension type appears more than once.

Unless stated otherwise, each header extension type may appear at most once
(spec, "Header extensions").  Only the known types are judged; unknown ones
are reported by ext-unknown-type.

QEMU: reads them in turn, so the last one wins for the backing format, the
external data file name, the feature name table and the bitmaps extension
(tested for the backing format); a second full disk encryption header
pointer sets up the encryption a second time.  On the next header update
QEMU writes each known extension once.  Repair: a read-write header update
(e.g. `qemu-img amend -o compat=1.1`, or `qemu-img convert`) rewrites the
extension area.
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import extension_label

NAME = "ext-duplicate"
CODE = "Q0302"
SEVERITY = "warning"
SCOPE = HeaderExtension


def _first_of_type(extensions) -> dict:
    """magic -> the first extension of that type, in one walk."""
    first = {}
    for other in extensions:
        first.setdefault(other.magic, other)
    return first


def check(ext, ctx):
    """Flag the second and later extensions of a known type (the extensions
    are walked once per image: a hostile header holds 262,143)."""
    image = ctx.image
    first = image.memo.once(NAME, lambda: _first_of_type(image.extensions)).get(ext.magic)
    if ext.magic in spec.EXT_NAMES and first is not None and first.index < ext.index:
        yield Problem(
            ext.file_offset,
            ext.path,
            f"{extension_label(ext.magic)} appears again at {ext.file_offset:#x} (first at "
            f"{first.file_offset:#x}, {first.path}); QEMU uses the last one",
        )
