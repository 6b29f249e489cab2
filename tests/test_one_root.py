"""One defect, one root finding.

Every row image of the rule tables (``rows_*.py``, one planted defect
each) is linted with the default configuration and with every rule on; no
two root-cause findings (``caused_by`` None) may share an (offset,
structure path): what follows from a defect is folded into its root
(docs/root-causes.md).  The exceptions are the pairs of :data:`ALLOWED`,
each with the reason the two findings are not one defect said twice.

A few one-defect images the row tables do not hold are built here: an L2
table past the end of the file named by an entry that keeps its COPIED
flag, and a misaligned snapshot table that also runs past the end of the
file.
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
