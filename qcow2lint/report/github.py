"""GitHub Actions workflow commands and the job summary table.

:func:`render_github` prints one annotation per root-cause finding (its
follow-on findings are folded into it: the message ends with ``(+N
follow-on findings)``; the JSON and SARIF reports list them)::

    ::error file=IMAGE,title=Q0701 l2-reserved-bits::0x4000 [l2@0x4000[0]] L2 entry ...

(``warning`` findings are ``::warning``, ``info`` ones ``::notice``; an image
that could not be read is an ``::error`` titled ``qcow2lint``).  Messages
escape ``%``, CR and LF, properties also ``:`` and ``,``, as GitHub's
toolkit does (``escapeData`` / ``escapeProperty``); before that every other
control character (an ESC would colour the job log, a NUL or a Unicode line
separator would cut it) is escaped by :func:`qcow2lint.text.escape`, so each
annotation is exactly one line starting with ``::``.  An image has no lines,
so the annotation has no ``line``: GitHub attaches it to the file.

GitHub shows at most 10 annotations of each type (error, warning, notice)
per step, and 50 per job, and drops the rest without a word.  So
:func:`render_github` emits the most severe ones within that limit (the
unreadable images first, then errors, warnings, info, each taking the images
in turn: every image's first error before any image's second):
at most ``max_per_type`` error and warning annotations (in report order)
and, when anything is left out, ``max_per_type - 1`` notices plus one notice
saying how many
findings were not annotated and where they are: every one of them follows
in the step log as a plain line (inside a collapsed group), and the job
summary lists them all.

:func:`github_step_summary` is a Markdown table of the same findings; the
CLI appends it to the file named by ``$GITHUB_STEP_SUMMARY`` when that is set.
"""

from __future__ import annotations

from collections.abc import Sequence

from qcow2lint.findings import ImageReport, Severity
from qcow2lint.report.cicommon import follow_on_note, repository_path
from qcow2lint.text import escape

COMMANDS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
#: GitHub's limit: annotations of one type shown per step.
MAX_ANNOTATIONS_PER_TYPE = 10
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


def render_github(reports: Sequence[ImageReport], max_per_type: int = MAX_ANNOTATIONS_PER_TYPE) -> str:
    """Workflow commands for the most severe findings (and every unreadable
    image) within GitHub's ``max_per_type`` annotations per type, then one
    notice and a log group for the rest (see the module docstring)."""
    # (severity rank, command, properties, message, plain log line), in report order
    items: list[tuple[int, str, dict[str, str], str, str]] = []
    # Each item's place among its image's items of the same severity: the
    # choice takes the images in turn, so one image with many findings
    # cannot take every annotation from the others.
    turn: list[int] = []
    for report in reports:
        start = len(items)
        path = repository_path(report.path)  # GitHub attaches annotations to repository paths
        if report.error is not None:
            message = f"not checked: {report.error}"
            items.append((4, "error", {"file": path, "title": "qcow2lint"}, message, f"error {path}: {message}"))
        for f in report.roots():
            message = f"{f.offset:#x} [{f.location}] {f.message}{follow_on_note(report, f)}"
            items.append(
                (
                    int(f.severity),
                    COMMANDS[f.severity],
                    {"file": path, "title": f"{f.code} {f.rule}"},
                    message,
                    f"{f.severity} {f.code} {f.rule} {path}:{message}",
                )
            )
        seen: dict[int, int] = {}
        for item in items[start:]:
            turn.append(seen.get(item[0], 0))
            seen[item[0]] = turn[-1] + 1
    budget = {"error": max_per_type, "warning": max_per_type, "notice": max_per_type}
    if any(sum(1 for item in items if item[1] == name) > max_per_type for name in budget):
        budget["notice"] = max(0, max_per_type - 1)  # room for the notice about the rest
    # Choose the most severe, within a severity every image's first before
    # any image's second (stable: report order), then emit the chosen ones
    # in report order.
    chosen: set[int] = set()
    for index in sorted(range(len(items)), key=lambda i: (-items[i][0], turn[i])):
        name = items[index][1]
        if budget[name] > 0:
            budget[name] -= 1
            chosen.add(index)
    lines = [_command(name, props, message) for i, (_, name, props, message, _) in enumerate(items) if i in chosen]
    rest = [(name, plain) for i, (_, name, _, _, plain) in enumerate(items) if i not in chosen]
    if rest:
        counts = {name: sum(1 for n, _ in rest if n == name) for name in ("error", "warning", "notice")}
        parts = ", ".join(f"{n} {name}{'s' if n != 1 else ''}" for name, n in counts.items() if n)
        lines.append(
            _command(
                "notice",
                {"title": "qcow2lint: more findings"},
                f"{len(rest)} more findings ({parts}) are not annotated: GitHub shows at most {max_per_type} "
                "annotations of each type per step. The job summary lists every finding, and this step's log lists "
                f'these in the group "qcow2lint: {len(rest)} findings not annotated".',
            )
        )
        # A plain line never starts with "::" (it starts with the severity),
        # so GitHub cannot read it as a command.
        lines.append(f"::group::qcow2lint: {len(rest)} findings not annotated")
        lines += [escape(plain) for _, plain in rest]
        lines.append("::endgroup::")
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
        status = (
            f"not checked: {report.error}"
            if report.error is not None
            # counts: every finding
            else ("no findings" if not report.findings else "findings")
        )
        lines.append(
            f"| {_code(repository_path(report.path))} | {counts['error']} | {counts['warning']} | {counts['info']} | {_cell(status)} |"
        )
    rows = [(report, f) for report in reports for f in report.roots()]
    if rows:
        lines += [
            "",
            "| image | offset | code | rule | severity | structure | message |",
            "|---|---:|---|---|---|---|---|",
        ]
        for report, f in rows[:max_rows]:
            lines.append(
                f"| {_code(repository_path(report.path))} | `{f.offset:#x}` | {f.code} | {_cell(f.rule)} | {f.severity} "
                f"| {_code(f.location)} | {_cell(f.message + follow_on_note(report, f))} |"
            )
        if len(rows) > max_rows:
            lines += ["", f"... and {len(rows) - max_rows} more findings (see the job log)."]
    return "\n".join(lines) + "\n"
