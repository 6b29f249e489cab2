"""The GitLab Code Quality report: a JSON list of issues.

Each root-cause finding is an issue (its follow-on findings are folded into
it: the description ends with ``(+N follow-on findings)``), with ``description`` (``CODE name [structure path]
at 0xOFFSET: message``), ``check_name`` (the rule name), a ``fingerprint``
unique per finding (sha256 of rule, image path, structure path and offset;
identical findings get a counter), ``severity`` (error -> ``major``,
warning -> ``minor``, info -> ``info``) and ``location.path`` (the image
path without ``./`` segments, as GitLab names the repository's files) with
``location.lines.begin`` 1 (an image has no lines).  An image that could not
be read is a ``critical`` issue with check_name ``unreadable-image``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from qcow2lint.findings import ImageReport, Severity
from qcow2lint.report.cicommon import follow_on_note, repository_path, unique_fingerprint
from qcow2lint.text import json_safe

SEVERITIES = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}
UNREADABLE_CHECK = "unreadable-image"


def _issue(description: str, check: str, fingerprint: str, severity: str, path: str) -> dict[str, Any]:
    return {
        "type": "issue",
        "engine_name": "qcow2lint",
        "description": description,
        "check_name": check,
        "categories": ["Bug Risk"],
        "fingerprint": fingerprint,
        "severity": severity,
        "location": {"path": path, "lines": {"begin": 1}},
    }


def gitlab_issues(reports: Sequence[ImageReport]) -> list[dict[str, Any]]:
    """The Code Quality issues of a run, as JSON-ready dicts."""
    issues = []
    seen: set[str] = set()

    def unique(fp: str) -> str:
        base, n = fp, 1
        while fp in seen:
            n += 1
            fp = hashlib.sha256(f"{base}\0{n}".encode()).hexdigest()
        seen.add(fp)
        return fp

    for report in reports:
        path = repository_path(report.path)
        if report.error is not None:
            fp = hashlib.sha256(f"{UNREADABLE_CHECK}\0{path}".encode("utf-8", "surrogateescape")).hexdigest()
            issues.append(_issue(f"not checked: {report.error}", UNREADABLE_CHECK, unique(fp), "critical", path))
        for f in report.roots():
            description = f"{f.code} {f.rule} [{f.location}] at {f.offset:#x}: {f.message}{follow_on_note(report, f)}"
            fp = unique(unique_fingerprint(f, path))
            issues.append(_issue(description, f.rule, fp, SEVERITIES[f.severity], path))
    return issues


def render_gitlab(reports: Sequence[ImageReport]) -> str:
    """The Code Quality report as indented JSON."""
    return json_safe(json.dumps(gitlab_issues(reports), indent=2, ensure_ascii=False)) + "\n"
