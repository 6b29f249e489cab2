"""GitHub Actions workflow commands and the job summary table.

:func:`render_github` prints one annotation per finding::

    ::error file=IMAGE,title=Q0701 l2-reserved-bits::0x4000 [l2@0x4000[0]] L2 entry ...

(``warning`` findings are ``::warning``, ``info`` ones ``::notice``; an image
that could not be read is an ``::error`` titled ``qcow2lint``).  Messages
escape ``%``, CR and LF, properties also ``:`` and ``,``, as GitHub's
toolkit does (``escapeData`` / ``escapeProperty``); before that every other
control character (an ESC would colour the job log, a NUL or a Unicode line
separator would cut it) is escaped by :func:`qcow2lint.text.escape`, so each
annotation is exactly one line starting with ``::``.  An image has no lines,
so the annotation has no ``line``: GitHub attaches it to the file.

:func:`github_step_summary` is a Markdown table of the same findings; the
CLI appends it to the file named by ``$GITHUB_STEP_SUMMARY`` when that is set.
"""

from __future__ import annotations

from collections.abc import Sequence

from qcow2lint.findings import ImageReport, Severity
from qcow2lint.text import escape

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
#: GitHub caps a job summary at 1 MiB; the table stops well before that.
MAX_SUMMARY_ROWS = 1000


def escape_data(text: str) -> str:
    """A workflow command's message, escaped as GitHub's toolkit does (CR
    and LF become ``%0D`` / ``%0A``, shown as line breaks inside the one
    annotation), then every other control character escaped."""
    return escape(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    """A workflow command's property value, escaped."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _command(name: str, properties: dict[str, str], message: str) -> str:
    props = ",".join(f"{key}={escape_property(value)}" for key, value in properties.items())
    return f"::{name} {props}::{escape_data(message)}"


def render_github(reports: Sequence[ImageReport]) -> str:
    """One workflow command per finding (and per unreadable image)."""
    lines = []
    for report in reports:
        if report.error is not None:
            lines.append(_command("error", {"file": report.path, "title": "qcow2lint"}, f"not checked: {report.error}"))
        for f in report.findings:
            props = {"file": report.path, "title": f"{f.code} {f.rule}"}
            lines.append(_command(COMMANDS[f.severity], props, f"{f.offset:#x} [{f.location}] {f.message}"))
    return "".join(line + "\n" for line in lines)


def _cell(text: str) -> str:
    """A Markdown table cell: no pipes, no line breaks, no HTML, no
    control characters."""
    text = escape(" ".join(str(text).split()))
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    """A cell in code font (backticks cannot be escaped inside a code span)."""
    text = _cell(text)
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def github_step_summary(reports: Sequence[ImageReport], max_rows: int = MAX_SUMMARY_ROWS) -> str:
    """A Markdown job summary: counts per image, then the findings."""
    lines = ["## qcow2lint", "", "| image | errors | warnings | info | status |", "|---|---:|---:|---:|---|"]
    for report in reports:
        counts = report.counts()
        status = f"not checked: {report.error}" if report.error is not None else (
            "no findings" if not report.findings else "findings")
        lines.append(f"| {_code(report.path)} | {counts['error']} | {counts['warning']} | {counts['info']} | {_cell(status)} |")
    rows = [(report.path, f) for report in reports for f in report.findings]
    if rows:
        lines += ["", "| image | offset | code | rule | severity | structure | message |", "|---|---:|---|---|---|---|---|"]
        for path, f in rows[:max_rows]:
            lines.append(
                f"| {_code(path)} | `{f.offset:#x}` | {f.code} | {_cell(f.rule)} | {f.severity} "
                f"| {_code(f.location)} | {_cell(f.message)} |"
            )
        if len(rows) > max_rows:
            lines += ["", f"... and {len(rows) - max_rows} more findings (see the job log)."]
    return "\n".join(lines) + "\n"
