"""The JSON report: one object for the whole run.

Every finding is listed, root causes and their consequences alike, with
``id`` (its number within the image, 1, 2, ... in report order) and
``caused_by`` (the ``id`` of the root-cause finding it follows from, or
null).  The ``summary`` of an image and of the run counts every finding
per severity, including those a capped rule did not list (its final "and N
more" finding has ``omitted``: N); ``shown`` says how many are listed one by
one, ``root_causes`` how many findings follow from no other.

The JSON Lines report (``--format jsonl``) holds the same: one line per
image, each that image's entry of the JSON report, written as the image is
checked, then a last line with the ``tool`` and the run's ``summary``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from qcow2lint import __version__
from qcow2lint.findings import ImageReport


def image_json(report: ImageReport) -> dict[str, Any]:
    """One image's entry in the JSON report."""
    item: dict[str, Any] = {
        "path": report.path,
        "findings": [finding.to_json() for finding in report.findings],
        "summary": {**report.counts(), "shown": report.shown(), "root_causes": len(report.roots())},
    }
    if report.stats is not None:
        item["stats"] = report.stats
    if report.error is not None:
        item["error"] = report.error
    return item


class Totals:
    """The run's ``summary``, added up one image at a time."""

    def __init__(self) -> None:
        self.total: dict[str, int] = {"images": 0, "unreadable": 0}

    def add(self, report: ImageReport) -> None:
        """Count ``report`` in."""
        total = self.total
        total["images"] += 1
        total["unreadable"] += report.error is not None
        for name, count in report.counts().items():
            total[name] = total.get(name, 0) + count
        total["shown"] = total.get("shown", 0) + report.shown()


def tool() -> dict[str, str]:
    """The report's ``tool`` object."""
    return {"name": "qcow2lint", "version": __version__}


def render_json(reports: Sequence[ImageReport], extra: dict[str, Any] | None = None) -> str:
    """``{"images": [...], "summary": {...}, "tool": {...}}`` as indented JSON."""
    totals = Totals()
    for report in reports:
        totals.add(report)
    document = {
        "tool": tool(),
        "images": [image_json(report) | (extra or {}).get(report.path, {}) for report in reports],
        "summary": totals.total,
    }
    return json.dumps(document, indent=2) + "\n"


def jsonl_image(report: ImageReport, extra: dict[str, Any] | None = None) -> str:
    """One image's line of the JSON Lines report: its entry in the JSON
    report (``extra`` merged in, such as its ``dump``), on one line."""
    return json.dumps(image_json(report) | (extra or {})) + "\n"


def jsonl_summary(totals: Totals) -> str:
    """The last line of the JSON Lines report: ``{"tool": {...}, "summary": {...}}``,
    the run's totals as the JSON report's ``summary`` has them."""
    return json.dumps({"tool": tool(), "summary": totals.total}) + "\n"
