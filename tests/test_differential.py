"""Differential test: qcow2lint's ``stats`` against ``qemu-img check``.

Each image object of ``qcow2lint check --format json`` carries ``stats`` with
the keys and meaning of ``qemu-img check --output=json``: image-end-offset,
total-clusters, allocated-clusters, fragmented-clusters, compressed-clusters,
leaks, corruptions (catalogue §3.3).  On an image where ``qemu-img check``
completes (exit 0, 2: corruptions, or 3: leaks only) the numbers must be
equal, corruptions included: there are no known gaps.  ``qemu-img check`` exit 1 (the check did not
complete: open refused, check errors) is skipped but counted.  qemu-img
omits zero-valued keys from its JSON: a missing key is 0.

The images:

(a) clean variants (:data:`consistency_builders.VARIANTS`): v2/v3, cluster
    sizes 512 B .. 2 MiB, refcount_bits 1 .. 64, extended L2, zlib / zstd
    compressed data, lazy refcounts, backing files, data files, snapshots
    with data written after them, bitmaps, preallocation, fragmented
    writes, LUKS, and a few made inconsistent on purpose (leaks made by
    raising a refcount, a dirty lazy-refcounts image after a crash, a
    refcount_bits=1 image with a snapshot);
(b) every crafted defect of the rule tests: the rows of every table
    (``rows_*.py``, the tables tests/test_rule_rows.py runs); a row that
    cannot be built fails its case.

qcow2lint runs in-process (``qcow2lint.lint(..., statistics=True)``).  Each
case records its verdict; the summary (how many compared, agreed, skipped
and why, every disagreement) is a report printed at the end of the run
(tests/conftest.py, ``pytest_terminal_summary``), not a test.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import consistency_builders as cb
import imagebuilder as ib
import pytest
from harness import DIFFERENTIAL_KEY, QEMU_STATS_KEYS, Row, RowImages, lint
from row_tables import TABLES

# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One image: ``build(directory, rows)`` writes it and returns its path
    and how QEMU must open it."""

    name: str
    source: str
    build: Callable[[Path, RowImages], tuple[Path, ib.Access]]


def _variant_case(variant: cb.Variant) -> Case:
    def build(directory: Path, rows: RowImages) -> tuple[Path, ib.Access]:
        path = directory / f"variant-{variant.name}.qcow2"
        variant.build(path, directory)
        return path, variant.access

    return Case(f"variant:{variant.name}", "clean variants", build)


def _row_case(table: str, row: Row) -> Case:
    def build(directory: Path, rows: RowImages) -> tuple[Path, ib.Access]:
        path, _ = rows.get(row)
        return path, rows.bases.access(row.base)

    return Case(f"{table}:{row.id}", table, build)


CASES: list[Case] = [_variant_case(v) for v in cb.VARIANTS] + [
    _row_case(table, row) for table, rows in TABLES.items() for row in rows
]


# ---------------------------------------------------------------------------
# running both tools
# ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """Both tools' view of one case."""

    case: Case
    path: Path | None = None
    build_error: str | None = None
    qemu_rc: int | None = None
    qemu: dict[str, Any] = field(default_factory=dict)
    qemu_stderr: str = ""
    qemu_how: str = ""
    lint: dict[str, Any] | None = None

    @property
    def qemu_stats(self) -> dict[str, int]:
        """qemu-img's figures, a missing key being 0."""
        return {key: int(self.qemu.get(key, 0)) for key in QEMU_STATS_KEYS}

    def lint_stats(self) -> dict[str, Any] | None:
        """qcow2lint's ``stats`` for the image (None when it has none)."""
        return None if self.lint is None else self.lint.get("stats")

    def describe(self) -> str:
        """Both outputs, for failure messages and the summary."""
        return (
            f"image {self.case.name} ({self.path})\n"
            f"  qemu-img check{self.qemu_how}: exit {self.qemu_rc}, {json.dumps(self.qemu_stats)}\n"
            f"  qemu-img stderr: {self.qemu_stderr.strip()[:600]!r}\n"
            f"  qcow2lint stats: {json.dumps(self.lint_stats())}\n"
            f"  qcow2lint error: {None if self.lint is None else self.lint.get('error') or self.lint.get('crash')}"
        )


def qemu_check_json(path: Path, access: ib.Access) -> tuple[int, dict[str, Any], str, str]:
    """``qemu-img check --output=json``.  So that the check can run, a
    missing backing file is replaced by none (``--image-opts ...,backing=``)
    and an encrypted image QEMU asks a key for gets the test secret."""
    proc = ib.run_tool([ib.QEMU_IMG, "check", "--output=json", *access.args(path)], check=False)
    how = ""
    if proc.returncode == 1 and "encrypt.key-secret" in proc.stderr and not access.opts:
        proc = ib.run_tool([ib.QEMU_IMG, "check", "--output=json", *ib.LUKS_ACCESS.args(path)], check=False)
        how = " (with the test secret)"
    if proc.returncode == 1 and "backing" in proc.stderr.lower() and not access.opts:
        proc = ib.run_tool(
            [ib.QEMU_IMG, "check", "--output=json", "--image-opts", f"driver=qcow2,file.filename={path},backing="],
            check=False,
        )
        how = " (backing file left out)"
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        data = {}
    return proc.returncode, data, proc.stderr, how


def _lint(path: Path) -> dict[str, Any]:
    """qcow2lint's statistics for one image, in-process; an unreadable image
    gives ``error`` and anything else raised gives ``crash``."""
    from qcow2lint import ImageError

    try:
        return {"stats": lint(path, statistics=True).stats}
    except ImageError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a crash is this image's disagreement, not the whole test's
        return {"crash": f"{type(exc).__name__}: {exc}"}


class Outcomes:
    """Each case built, checked by qemu-img and linted once, on first use."""

    def __init__(self, rows: RowImages, root: Path) -> None:
        self.rows, self.root = rows, root
        self._done: dict[str, Outcome] = {}

    def get(self, case: Case) -> Outcome:
        """The outcome of ``case``."""
        if case.name not in self._done:
            outcome = Outcome(case)
            try:
                directory = self.root / f"c{len(self._done)}"
                directory.mkdir()
                outcome.path, access = case.build(directory, self.rows)
            except Exception as exc:
                outcome.build_error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
            else:
                outcome.qemu_rc, outcome.qemu, outcome.qemu_stderr, outcome.qemu_how = qemu_check_json(
                    outcome.path, access
                )
                outcome.lint = _lint(outcome.path)
            self._done[case.name] = outcome
        return self._done[case.name]


@pytest.fixture(scope="module")
def outcomes(row_images: RowImages, tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    """The session's outcomes, computed per case on demand."""
    return Outcomes(row_images, tmp_path_factory.mktemp("differential"))


# ---------------------------------------------------------------------------
# the comparison
# ---------------------------------------------------------------------------


def verdict(outcome: Outcome) -> tuple[str, str]:
    """``(kind, detail)``: kind is compared / corrupt-agree / skipped /
    build-failed / disagree."""
    if outcome.build_error is not None:
        return "build-failed", outcome.build_error.splitlines()[0]
    if outcome.lint is not None and "crash" in outcome.lint:
        return "disagree", f"qcow2lint crashed: {outcome.lint['crash']}"
    rc = outcome.qemu_rc
    if rc == 1:
        lines = [line for line in outcome.qemu_stderr.splitlines() if line.strip() and "warning:" not in line]
        first = lines[0] if lines else "no message"
        return "skipped", f"qemu-img check did not complete (exit 1): {first}"
    if rc not in (0, 2, 3):
        return "skipped", f"qemu-img check exit {rc}"
    stats = outcome.lint_stats()
    if stats is None:
        return "disagree", "qcow2lint gave no stats where qemu-img check completed"
    missing = [key for key in QEMU_STATS_KEYS if key not in stats]
    if missing:
        return "disagree", f"qcow2lint stats lack {missing}"
    if rc == 2 and stats["corruptions"] == 0:
        return "disagree", "qemu-img check found corruptions, qcow2lint counts none"
    theirs = outcome.qemu_stats
    differ = {key: (theirs[key], stats[key]) for key in QEMU_STATS_KEYS if theirs[key] != stats[key]}
    if differ:
        return "disagree", "qemu-img vs qcow2lint: " + ", ".join(f"{k} {a} != {b}" for k, (a, b) in differ.items())
    return ("corrupt-agree" if rc == 2 else "compared"), ""


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_stats_agree_with_qemu_img_check(
    case: Case, outcomes: Outcomes, record_property: Callable[[str, object], None]
) -> None:
    """Equal figures wherever qemu-img check completes, with or without
    corruptions.  A case that cannot be built fails.  The verdict goes to
    the run's differential summary."""
    outcome = outcomes.get(case)
    kind, detail = verdict(outcome)
    record_property(
        DIFFERENTIAL_KEY,
        {
            "kind": kind,
            "source": case.source,
            "qemu_how": outcome.qemu_how,
            "reason": re.sub(r"Could not open '[^']*': |qemu-img: ", "", detail)[:150]
            if kind in ("skipped", "build-failed")
            else "",
            "disagreement": f"{detail}\n{outcome.describe()}" if kind == "disagree" else "",
        },
    )
    if kind == "build-failed":
        pytest.fail(f"could not build {case.name}: {outcome.build_error}")
    if kind == "skipped":
        pytest.skip(detail)
    assert kind != "disagree", f"{detail}\n{outcome.describe()}"
