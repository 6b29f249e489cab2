"""The JSON report: one object for the whole run.

Every finding is listed, root causes and their consequences alike, with
``id`` (its number within the image, 1, 2, ... in report order) and
``caused_by`` (the ``id`` of the root-cause finding it follows from, or
null).  The ``summary`` of an image and of the run counts every finding
per severity, including those a capped rule did not list (its final "and N
more" finding has ``omitted``: N); ``shown`` says how many are listed one by
one, ``root_causes`` how many findings follow from no other.
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


def render_json(reports: Sequence[ImageReport], extra: dict[str, Any] | None = None) -> str:
    """``{"images": [...], "summary": {...}, "tool": {...}}`` as indented JSON."""
    total = {"images": len(reports), "unreadable": sum(r.error is not None for r in reports)}
    for report in reports:
        for name, count in report.counts().items():
            total[name] = total.get(name, 0) + count
        total["shown"] = total.get("shown", 0) + report.shown()
    document = {
        "tool": {"name": "qcow2lint", "version": __version__},
        "images": [image_json(report) | (extra or {}).get(report.path, {}) for report in reports],
        "summary": total,
    }
    return json.dumps(document, indent=2) + "\n"
