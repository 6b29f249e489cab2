"""The SARIF 2.1.0 report, plain (``sarif``) or for GitHub code scanning
(``sarif-github``).

One run; ``tool.driver.rules`` holds every rule of the registry (id = the
rule code, name = the rule name, the summary and the documentation as help
text) plus the engine's ``internal-error`` pseudo-rule.  Each finding is a
result whose physical location is the image file (a relative URI
reference, percent-escaped; an absolute path becomes a ``file://`` URI) with
a binary region: ``byteOffset`` is the finding's offset, ``byteLength`` is
8 for a 64-bit table entry and 1 otherwise (the first byte of the field or
structure; see :func:`qcow2lint.report.cicommon.byte_length`).  The
structure path is the result's logical location (``kind: "member"``).
Every finding is a result; one that follows from a root cause has that
cause as its ``relatedLocations`` entry (``id`` = the cause's finding id,
its message names the cause) and says so in its message, and
``properties`` carry ``findingId``, ``causedBy`` or ``followOnFindings``.  An
image that could not be read is an error-level ``toolExecutionNotification``
and makes ``executionSuccessful`` false.

GitHub code scanning ignores binary regions and requires
``region.startLine``: with ``github=True`` the region is ``{"startLine": 1}``,
the byte range moves to ``result.properties`` (``byteOffset``,
``byteLength``, ``structurePath``), each result gets
``partialFingerprints["qcow2lint/v1"]`` (sha256 of rule name, image path and
structure path; stable across runs and offsets) and the rules get
``properties["problem.severity"]`` and ``tags``.

With ``docs_url`` (the base URL of the rule pages, resolved by
:func:`qcow2lint.links.docs_url`) every rule has a ``helpUri``, its page
``DOCS_URL + NAME + ".md"``, and the driver an ``informationUri``, the
rules index (``DOCS_URL`` without its trailing ``/``, plus ``.md``).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from qcow2lint import __version__
from qcow2lint.findings import INTERNAL_ERROR, INTERNAL_ERROR_CODE, Finding, ImageReport, RuleMeta, Severity
from qcow2lint.links import rule_url, rules_index_url
from qcow2lint.report.cicommon import (
    OMITTED_LOCATION,
    artifact_uri,
    byte_length,
    fingerprint,
)
from qcow2lint.text import json_safe

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "qcow2lint/v1"
LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
#: GitHub's ``problem.severity``: error, warning or recommendation.
GITHUB_SEVERITY = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "recommendation"}
_INTERNAL_DOC = (
    "A rule crashed on this image; the other rules still ran.\n\n"
    "The engine reports a crashing rule (or a crash of the whole-image refcount analysis) as this "
    "finding instead of stopping; the rule's other findings for the image are skipped."
)


def _sentence(text: str) -> str:
    """SARIF messages are sentences: end them with a period."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _descriptor(
    code: str, name: str, severity: Severity, doc: str, github: bool, docs_url: str | None = None
) -> dict[str, Any]:
    doc = textwrap.dedent(doc).strip() or name
    summary = doc.splitlines()[0]
    descriptor: dict[str, Any] = {
        "id": code,
        "name": name,
        "shortDescription": {"text": _sentence(summary)},
        "fullDescription": {"text": _sentence(doc)},
        "help": {"text": _sentence(doc), "markdown": doc},
        "defaultConfiguration": {"level": LEVELS[severity]},
    }
    if docs_url:
        descriptor["helpUri"] = rule_url(docs_url, name)
    if github:
        descriptor["properties"] = {"problem.severity": GITHUB_SEVERITY[severity], "tags": ["qcow2", "disk-image"]}
    return descriptor


def _location(finding: Finding, path: str, github: bool) -> dict[str, Any]:
    """A finding's place: the image file (a byte region), and its structure path."""
    physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(path)}}
    if github:
        physical["region"] = {"startLine": 1}
    else:
        physical["region"] = {"byteOffset": finding.offset, "byteLength": byte_length(finding)}
    location: dict[str, Any] = {"physicalLocation": physical}
    if finding.location and finding.location != OMITTED_LOCATION:
        location["logicalLocations"] = [{"fullyQualifiedName": finding.location, "kind": "member"}]
    return location


def _result(
    finding: Finding,
    path: str,
    rule_index: dict[str, int],
    github: bool,
    cause: Finding | None = None,
    follow_on: int = 0,
) -> dict[str, Any]:
    length = byte_length(finding)
    location = _location(finding, path, github)
    text = f"{finding.message} [{finding.location} at {finding.offset:#x}]" if github else finding.message
    if cause is not None:
        text = f"{_sentence(text)} It follows from the root cause {cause.code} {cause.rule} at {cause.offset:#x}"
    elif follow_on:
        text = f"{_sentence(text)} {follow_on} follow-on finding{'s follow' if follow_on != 1 else ' follows'} from it"
    result: dict[str, Any] = {
        "ruleId": finding.code,
        "ruleIndex": rule_index[finding.code],
        "level": LEVELS[finding.severity],
        "message": {"text": _sentence(text)},
        "locations": [location],
    }
    properties: dict[str, Any] = {"findingId": finding.id}
    if cause is not None:
        related = _location(cause, path, github)
        related["id"] = cause.id
        related["message"] = {"text": _sentence(f"Root cause: {cause.code} {cause.rule}: {cause.message}")}
        result["relatedLocations"] = [related]
        properties["causedBy"] = cause.id
    elif follow_on:
        properties["followOnFindings"] = follow_on
    if github:
        result["partialFingerprints"] = {FINGERPRINT_KEY: fingerprint(path, finding)}
        properties |= {"byteOffset": finding.offset, "byteLength": length, "structurePath": finding.location}
    result["properties"] = properties
    return result


def sarif_document(
    reports: Sequence[ImageReport], registry: Iterable[RuleMeta], github: bool = False, docs_url: str | None = None
) -> dict[str, Any]:
    """The SARIF log as a JSON-ready dict (see the module docstring)."""
    known = list(registry)
    rules = [_descriptor(r.code, r.name, r.severity, r.doc, github, docs_url) for r in known]
    rule_index = {r.code: i for i, r in enumerate(known)}
    rule_index[INTERNAL_ERROR_CODE] = len(rules)
    rules.append(_descriptor(INTERNAL_ERROR_CODE, INTERNAL_ERROR, Severity.ERROR, _INTERNAL_DOC, github, docs_url))
    results: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    for report in reports:
        if report.error is not None:
            notifications.append(
                {
                    "level": "error",
                    "message": {"text": _sentence(f"not checked: {report.error}")},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(report.path)}}}],
                }
            )
        by_id = {f.id: f for f in report.findings}
        follow_on = report.follow_on()
        for finding in report.findings:
            if finding.code not in rule_index:  # a finding of a rule outside the registry
                rule_index[finding.code] = len(rules)
                rules.append(_descriptor(finding.code, finding.rule, finding.severity, "", github))
            cause = by_id.get(finding.caused_by) if finding.caused_by is not None else None
            results.append(_result(finding, report.path, rule_index, github, cause, follow_on.get(finding.id, 0)))
    invocation: dict[str, Any] = {"executionSuccessful": not notifications}
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    driver: dict[str, Any] = {
        "name": "qcow2lint",
        "version": __version__,
        "semanticVersion": __version__,
        **({"informationUri": rules_index_url(docs_url)} if docs_url else {}),
        "rules": rules,
    }
    return {
        "$schema": SCHEMA_URI,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "invocations": [invocation], "results": results}],
    }


def render_sarif(
    reports: Sequence[ImageReport], registry: Iterable[RuleMeta], github: bool = False, docs_url: str | None = None
) -> str:
    """The SARIF 2.1.0 log of a run as indented JSON; ``github=True`` for
    GitHub code scanning (``--format sarif-github``); ``docs_url`` is the
    base URL of the rule pages."""
    document = sarif_document(reports, registry, github, docs_url)
    return json_safe(json.dumps(document, indent=2, ensure_ascii=False)) + "\n"
