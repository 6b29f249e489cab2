"""The JSON report: one object for the whole run."""

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
        "summary": report.counts(),
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
    document = {
        "tool": {"name": "qcow2lint", "version": __version__},
        "images": [image_json(report) | (extra or {}).get(report.path, {}) for report in reports],
        "summary": total,
    }
    return json.dumps(document, indent=2) + "\n"
