"""The JUnit XML report: one test suite per image, one test case per rule.

``<testsuites name="qcow2lint">`` holds a ``<testsuite name=IMAGE>`` per
image with a ``<testcase classname=IMAGE name=RULE>`` per enabled rule.  A
rule with findings at or above ``fail_level`` fails: its test case has one
``<failure message="N findings" type=SEVERITY>`` whose text lists the
findings in the text report's format (every finding: a consequence of a
root cause ends with ``[follows from 0xOFFSET CODE name]``, and fails the
rule it belongs to); findings below ``fail_level`` go to
the test case's ``<system-out>``.  Findings of rules outside the enabled set
(the engine's ``internal-error``) get a test case of their own.  An image
that could not be read is a suite with a single ``read-image`` test case
holding an ``<error>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable, Sequence

from qcow2lint.findings import Finding, ImageReport, RuleMeta, Severity
from qcow2lint.text import escape

READ_CASE = "read-image"
#: Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[^\\t\\n\\r\\x20-\\ud7ff\\ue000-\\ufffd\\U00010000-\\U0010ffff]")


def _xml(text: str) -> str:
    """``text`` with the characters XML cannot carry shown as ``\\xNN``."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _one(text: str) -> str:
    """One line of image-derived text: control characters escaped, then
    what XML cannot carry (see :func:`qcow2lint.text.escape`)."""
    return _xml(escape(text))


def _line(path: str, f: Finding, causes: dict[int, Finding] | None = None) -> str:
    cause = (causes or {}).get(f.caused_by) if f.caused_by is not None else None
    follows = f" [follows from {cause.offset:#x} {cause.code} {cause.rule}]" if cause is not None else ""
    return escape(f"{path}:{f.offset:#x}: {f.code} {f.rule} {f.severity} [{f.location}] {f.message}{follows}")


def _suite(report: ImageReport, names: list[str], fail_level: Severity) -> ET.Element:
    suite = ET.Element("testsuite", name=_one(report.path))
    failures = errors = 0
    if report.error is not None:
        case = ET.SubElement(suite, "testcase", classname=_one(report.path), name=READ_CASE)
        error = ET.SubElement(case, "error", message=_one(f"not checked: {report.error}"), type="unreadable")
        error.text = _one(report.error)
        errors = 1
    else:
        causes = {f.id: f for f in report.findings}
        by_rule: dict[str, list[Finding]] = {name: [] for name in names}
        for finding in report.findings:
            by_rule.setdefault(finding.rule, []).append(finding)
        for name, found in by_rule.items():
            case = ET.SubElement(suite, "testcase", classname=_one(report.path), name=_one(name))
            failing = [f for f in found if f.severity >= fail_level]
            if failing:
                failures += 1
                worst = max(f.severity for f in failing)
                count = f"{len(failing)} finding{'s' if len(failing) != 1 else ''}"
                failure = ET.SubElement(
                    case, "failure", message=_one(f"{found[0].code} {name}: {count}"), type=str(worst)
                )
                failure.text = _xml("\n".join(_line(report.path, f, causes) for f in failing))
            quiet = [f for f in found if f.severity < fail_level]
            if quiet:
                ET.SubElement(case, "system-out").text = _xml("\n".join(_line(report.path, f, causes) for f in quiet))
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    return suite


def render_junit(
    reports: Sequence[ImageReport],
    registry: Iterable[RuleMeta],
    enabled: Collection[str] | None = None,
    fail_level: Severity = Severity.INFO,
) -> str:
    """The JUnit XML document of a run.

    ``enabled`` names the rules that ran (default: every rule of the
    registry); ``fail_level`` is the lowest severity that fails a test case.
    """
    names = [rule.name for rule in registry if enabled is None or rule.name in enabled]
    root = ET.Element("testsuites", name="qcow2lint")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for report in reports:
        suite = _suite(report, names, fail_level)
        root.append(suite)
        for key in totals:
            totals[key] += int(suite.get(key, "0"))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
