"""The header extensions are not in the order QEMU writes them.

QEMU writes the extensions in a fixed order (`qcow2_update_header`): backing
file format, external data file name, full disk encryption header pointer,
feature name table, bitmaps, then unknown extensions it keeps, then the end
marker (spec, "Header extensions").  The spec sets no order, so another
order is legal, but it shows that another program wrote or edited the
header.

QEMU: silent; the next header update rewrites the extensions in its order.
Repair: none needed (`qemu-img amend -o compat=1.1` normalises the order).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import HeaderExtension
from qcow2lint.rulekit import extension_label

NAME = "ext-order"
CODE = "Q0304"
SEVERITY = "info"
SCOPE = HeaderExtension
#: QEMU's write order; unknown types come after all of these.
QEMU_ORDER = (
    spec.EXT_BACKING_FORMAT,
    spec.EXT_DATA_FILE,
    spec.EXT_CRYPTO_HEADER,
    spec.EXT_FEATURE_TABLE,
    spec.EXT_BITMAPS,
)


def _rank(magic: int) -> int:
    return QEMU_ORDER.index(magic) if magic in QEMU_ORDER else len(QEMU_ORDER)


def _first_later_ranked(extensions) -> dict:
    """index -> the first earlier extension of a higher rank, in one walk."""
    first_of_rank: dict[int, object] = {}  # rank -> first extension of that rank so far
    found = {}
    for ext in extensions:
        rank = _rank(ext.magic)
        earlier = [first_of_rank[r] for r in first_of_rank if r > rank]
        if earlier:
            found[ext.index] = min(earlier, key=lambda other: other.index)
        first_of_rank.setdefault(rank, ext)
    return found


def check(ext, ctx):
    """Flag an extension that QEMU would write before an earlier one (the
    extensions are walked once per image: a hostile header holds 262,143)."""
    image = ctx.image
    first = image.memo.once(NAME, lambda: _first_later_ranked(image.extensions)).get(ext.index)
    if first is not None:
        yield Problem(
            ext.file_offset,
            ext.path,
            f"{extension_label(ext.magic)} at {ext.file_offset:#x} comes after the {extension_label(first.magic)} "
            f"({first.path}); QEMU writes backing format, data file, crypto header, feature table, bitmaps, "
            "then unknown extensions",
        )
