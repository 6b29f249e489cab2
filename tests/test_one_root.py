"""One defect, one root finding.

Every row image of the rule tables (``rows_*.py``, one planted defect
each) is linted with the default configuration and with every rule on; no
two root-cause findings (``caused_by`` None) may share an (offset,
structure path): what follows from a defect is folded into its root
(docs/root-causes.md).  The exceptions are the pairs of :data:`ALLOWED`,
each with the reason the two findings are not one defect said twice.

A few one-defect images the row tables do not hold are built here: an L2
table past the end of the file named by an entry that keeps its COPIED
flag, a misaligned snapshot table that also runs past the end of the
file, and tables read from a wrong offset (misaligned, or past the end of
the file): each is one root, whatever follows from reading the table there
and from not reading the table it should be.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import consistency_builders as cb
import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import PEDANTIC, Bases, Row, RowImages, config, row_id
from row_tables import TABLES

import qcow2lint
from qcow2lint.findings import Finding, ImageReport

#: Rule pairs that may both be roots at one (offset, structure path), and why.
ALLOWED: dict[frozenset[str], str] = {
    # Notes of a property, not defects: an image that opens another file is
    # told so at the field that names it, whatever else is wrong there.
    frozenset({"backing-file-present", "backing-name-overlaps-header"}): (
        "backing-file-present notes that QEMU opens a backing file; the name's placement is a defect of its own"
    ),
    frozenset({"backing-file-present", "backing-offset-out-of-cluster"}): (
        "backing-file-present notes that QEMU opens a backing file; the name's placement is a defect of its own"
    ),
    frozenset({"backing-file-present", "backing-format-missing"}): (
        "backing-file-present notes that QEMU opens a backing file; the missing format extension is a defect of its own"
    ),
    frozenset({"backing-file-unsafe-name", "backing-file-missing"}): (
        "an absolute (or otherwise unsafe) name is a risk whether or not the file exists; a missing file stops "
        "QEMU whatever its name"
    ),
    frozenset({"data-file-unsafe-name", "data-file-missing"}): (
        "an absolute (or otherwise unsafe) name is a risk whether or not the file exists; a missing file stops "
        "QEMU whatever its name"
    ),
    frozenset({"data-file-present", "data-file-bit-without-file"}): (
        "data-file-present notes that QEMU opens an external data file; the missing name extension is a defect of "
        "its own"
    ),
}

ROWS: list[Row] = [row for rows in TABLES.values() for row in rows]

CONFIGS = {"default": "", "all-rules": PEDANTIC}


def shared_roots(report: ImageReport) -> list[str]:
    """The roots that share an (offset, structure path) with another root
    and are not an allowed pair, as readable lines."""
    at: dict[tuple[int, str], list[Finding]] = defaultdict(list)
    for finding in report.roots():
        if not finding.omitted:  # "and N more" stands at its rule's last offset
            at[(finding.offset, finding.location)].append(finding)
    bad = []
    for (offset, location), found in at.items():
        for index, first in enumerate(found):
            for second in found[index + 1 :]:
                if first.rule == second.rule or frozenset({first.rule, second.rule}) not in ALLOWED:
                    bad.append(
                        f"{offset:#x} {location}: {first.rule} ({first.message}) + {second.rule} ({second.message})"
                    )
    return bad


def lint(path: Path, yaml: str, deep: bool = False) -> ImageReport:
    """``qcow2lint.lint`` with a YAML configuration (every finding kept)."""
    return qcow2lint.lint(path, config=config(yaml), deep=deep)


@pytest.mark.parametrize("which", sorted(CONFIGS))
@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_one_root_per_place(row: Row, which: str, row_images: RowImages) -> None:
    path, _ = row_images.get(row)
    report = lint(path, CONFIGS[which] + row.config, row.deep)
    assert not shared_roots(report), "\n".join(shared_roots(report))
    # the linking reads what a finding is about from its fields, never from
    # its location: a finding at an L2 entry names the entry's table
    for finding in report.findings:
        if finding.location.startswith("l2@") and "[" in finding.location:
            assert finding.about == int(finding.location[3:].partition("[")[0], 16), finding


def test_every_allowed_pair_has_a_reason() -> None:
    assert all(len(pair) == 2 and reason for pair, reason in ALLOWED.items())


# --- one-defect images the row tables do not hold ------------------------------------


def l2_table_past_eof_copied(img: ib.Qcow2Image) -> None:
    """An L1 entry names an L2 table past the end of the file and keeps
    COPIED: the table QEMU cannot read has refcount 0 (l1-copied-mismatch
    follows)."""
    assert img.l1[PATCH_L1_INDEX] & (1 << 63), "the base's entry must have COPIED"
    img.set_l1(PATCH_L1_INDEX, cb.beyond_eof(img) | (1 << 63))


def snapshot_table_misaligned_past_eof(img: ib.Qcow2Image) -> None:
    """snapshot_offset moved 8 bytes before the end of the file: misaligned,
    and the table read there runs past the end (snapshot-table-out-of-file
    follows)."""
    img.set_header("snapshots_offset", img.file_size - 8)


EXTRA: dict[str, tuple[str, Callable[[ib.Qcow2Image], None], tuple[str, ...]]] = {
    "l2-table-past-eof-copied": ("v3", l2_table_past_eof_copied, ("l2-out-of-file", "l1-copied-mismatch")),
    "snapshot-table-misaligned-past-eof": (
        "snapshot",
        snapshot_table_misaligned_past_eof,
        ("misaligned-snapshot-table", "snapshot-table-out-of-file"),
    ),
}


@pytest.mark.parametrize("which", sorted(CONFIGS))
@pytest.mark.parametrize("name", sorted(EXTRA))
def test_one_root_for_one_defect(name: str, which: str, base_images: Bases, tmp_path: Path) -> None:
    base, patch, (root_rule, follower) = EXTRA[name]
    path = base_images.copy(base, tmp_path)
    patch(ib.Qcow2Image(path))
    report = lint(path, CONFIGS[which])
    assert not shared_roots(report), "\n".join(shared_roots(report))
    (root,) = [f for f in report.findings if f.rule == root_rule]
    (follows,) = [f for f in report.findings if f.rule == follower]
    assert root.caused_by is None
    assert follows.caused_by == root.id
    assert (follows.offset, follows.location) == (root.offset, root.location)


# --- one root for every table read from a wrong offset ------------------------------


def _bitmaps_dir(img: ib.Qcow2Image) -> int:
    return img.read_int(img.ext_field_offset(ib.EXT_BITMAPS, "bitmap_directory_offset"), "Q")


def _first_data_cluster(img: ib.Qcow2Image) -> int:
    """The host offset of guest cluster 0 (written with a pattern)."""
    (entry,) = img.read_u64_table(img.l1[0] & ib.L1E_OFFSET_MASK, 1)
    return int(entry & ib.L2E_OFFSET_MASK)


def _snapshot_l1(offset: Callable[[ib.Qcow2Image], int]) -> Callable[[ib.Qcow2Image], None]:
    return lambda img: img.set_snapshot_field("snap1", "l1_table_offset", offset(img)) and None


def _bitmap_table(offset: Callable[[ib.Qcow2Image], int]) -> Callable[[ib.Qcow2Image], None]:
    return lambda img: img.set_bitmap_field(0, "bitmap_table_offset", offset(img)) and None


def _bitmap_directory(offset: Callable[[ib.Qcow2Image], int]) -> Callable[[ib.Qcow2Image], None]:
    return lambda img: img.set_ext_field(ib.EXT_BITMAPS, "bitmap_directory_offset", offset(img)) and None


#: name: (base, patch, the root, rules that must follow from it).  The
#: patches move a table 0x200 bytes (misaligned) or 4 clusters past the end
#: of the file.  What follows: the garbage entries read there, the leaks of
#: the real table and of what only it names, the cut (file-truncated) when
#: the table is read past the end of the file.
WRONG_OFFSET: dict[str, tuple[str, Callable[[ib.Qcow2Image], None], str, set[str]]] = {
    "snapshot-l1-misaligned": (
        "snapshot",
        _snapshot_l1(lambda img: img.snapshot("snap1").fields["l1_table_offset"] + 0x200),
        "misaligned-snapshot-l1-table",
        {"refcount-leak"},
    ),
    "snapshot-l1-misaligned-into-data": (
        "snapshot",
        _snapshot_l1(lambda img: _first_data_cluster(img) + 0x200),
        "misaligned-snapshot-l1-table",
        {"refcount-leak", "l1-reserved-bits", "misaligned-l2-table", "l2-out-of-file", "file-truncated"},
    ),
    "snapshot-l1-past-eof": (
        "snapshot",
        _snapshot_l1(cb.beyond_eof),
        "snapshot-l1-out-of-file",
        {"refcount-leak", "file-truncated"},
    ),
    "snapshot-table-past-eof": (
        "snapshot",
        lambda img: img.set_header("snapshots_offset", cb.beyond_eof(img)) and None,
        "snapshot-table-out-of-file",
        {"refcount-leak", "file-truncated"},
    ),
    "l1-table-past-eof": (
        "v3",
        lambda img: img.set_header("l1_table_offset", cb.beyond_eof(img)) and None,
        "l1-out-of-file",
        {"refcount-leak", "file-truncated"},
    ),
    "l2-table-past-eof": (
        "v3",
        lambda img: img.set_l1(PATCH_L1_INDEX, cb.beyond_eof(img) | (1 << 63)) and None,
        "l2-out-of-file",
        {"refcount-leak", "file-truncated", "l1-copied-mismatch"},
    ),
    "bitmap-directory-misaligned": (
        "bitmaps",
        _bitmap_directory(lambda img: _bitmaps_dir(img) + 0x200),
        "misaligned-bitmap-directory",
        {"refcount-leak", "file-truncated"},
    ),
    "bitmap-directory-misaligned-into-a-table": (
        "bitmaps",
        _bitmap_directory(lambda img: _bitmaps_dir(img) - img.cluster_size + 0x200),
        "misaligned-bitmap-directory",
        {"refcount-leak", "bitmap-dir-size-mismatch"},
    ),
    "bitmap-directory-past-eof": (
        "bitmaps",
        _bitmap_directory(cb.beyond_eof),
        "bitmap-dir-out-of-file",
        {"refcount-leak", "file-truncated"},
    ),
    "bitmap-table-misaligned": (
        "bitmaps",
        _bitmap_table(lambda img: img.bitmap(0).fields["bitmap_table_offset"] + 0x200),
        "misaligned-bitmap-table",
        {"refcount-leak"},
    ),
    "bitmap-table-misaligned-into-data": (
        "bitmaps",
        _bitmap_table(lambda img: _first_data_cluster(img) + 0x200),
        "misaligned-bitmap-table",
        {"refcount-leak", "bitmap-table-reserved-bits", "bitmap-data-out-of-file", "metadata-overlap"},
    ),
    "bitmap-table-past-eof": (
        "bitmaps",
        _bitmap_table(cb.beyond_eof),
        "bitmap-table-out-of-file",
        {"refcount-leak", "file-truncated"},
    ),
}

#: Roots that are separate facts of these images, with every rule on.
SEPARATE = {
    # qemu-img writes the bitmap directory at the end of the file, in a
    # partial last cluster: the bitmaps base has this note before any patch
    "file-trailing-partial-cluster",
    # an estimate of the memory opening the image takes, summed over every
    # structure (a garbage directory entry asks for a large bitmap): not a
    # finding about one structure
    "open-metadata-too-large",
}


@pytest.mark.parametrize("which", sorted(CONFIGS))
@pytest.mark.parametrize("name", sorted(WRONG_OFFSET))
def test_a_table_read_from_a_wrong_offset_is_one_root(
    name: str, which: str, base_images: Bases, tmp_path: Path
) -> None:
    base, patch, root_rule, followers = WRONG_OFFSET[name]
    path = base_images.copy(base, tmp_path)
    patch(ib.Qcow2Image(path))
    report = lint(path, CONFIGS[which])
    assert not shared_roots(report), "\n".join(shared_roots(report))
    roots = [f for f in report.roots() if f.rule not in SEPARATE]
    assert [f.rule for f in roots] == [root_rule], [(f.rule, f.message) for f in report.roots()]
    assert followers <= {f.rule for f in report.findings if f.caused_by == roots[0].id}


def test_a_file_cut_short_stays_the_root_of_the_cut(base_images: Bases, tmp_path: Path) -> None:
    """The v3 base cut in half: both L2 tables now lie past the end, the
    first exactly at it.  The cut is the fact (two structures past the end,
    no table left to find among the leaks): file-truncated stays a root,
    not a consequence of the L2 table that starts where the file ends."""
    path = base_images.copy("v3", tmp_path)
    ib.Qcow2Image(path).truncate(path.stat().st_size // 2)
    report = lint(path, "")
    (cut,) = [f for f in report.findings if f.rule == "file-truncated"]
    assert "2 structure(s)" in cut.message and cut.caused_by is None
    assert any(f.rule == "l2-out-of-file" and f.covers and f.covers[0] == cut.offset for f in report.findings)
