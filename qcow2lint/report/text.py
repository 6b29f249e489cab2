"""The text report: one line per root-cause finding (every finding with
``show_all``), then a summary line per image.

Every path, structure path and message goes through
:func:`qcow2lint.text.escape`, so no character of an image name (or of a
plugin's message) can start a line, move the cursor or colour the terminal:
the report has exactly one line per finding.
"""

from __future__ import annotations

from qcow2lint.findings import ImageReport, Severity
from qcow2lint.text import escape

#: ANSI colours of the severities, used only when the caller asks (a TTY
#: without NO_COLOR).
COLOURS = {Severity.ERROR: "\033[1;31m", Severity.WARNING: "\033[33m", Severity.INFO: "\033[36m"}
RESET = "\033[0m"


def render_text(
    report: ImageReport, statistics: bool = False, colour: bool = False, show_all: bool = False, summary: bool = True
) -> str:
    """``IMAGE:0xOFFSET: CODE name severity [location] message`` lines, a
    summary, and with ``statistics`` the findings per rule and qemu-img
    check's figures.  ``colour`` paints the severities.

    A root cause ends with ``(+N follow-on findings; --show-all lists
    them)`` and its consequences are not listed; with ``show_all`` every
    finding is, a consequence ending with ``[follows from 0xOFFSET CODE
    name]``.  The summary counts every finding, listed or not, and says how
    many are shown when that is fewer.  Without ``summary`` only the
    finding lines are given (``--quiet``)."""

    def severity(value: Severity) -> str:
        return f"{COLOURS[value]}{value}{RESET}" if colour else str(value)

    path = escape(report.path)
    follow_on = report.follow_on()
    by_id = {f.id: f for f in report.findings}
    lines, shown = [], 0
    for f in report.findings:
        if f.caused_by is not None and not show_all:
            continue
        shown += not f.omitted
        line = (
            f"{path}:{f.offset:#x}: {escape(f.code)} {escape(f.rule)} {severity(f.severity)} "
            f"[{escape(f.location)}] {escape(f.message)}"
        )
        cause = by_id.get(f.caused_by) if f.caused_by is not None else None
        if cause is not None:
            line += f" [follows from {cause.offset:#x} {escape(cause.code)} {escape(cause.rule)}]"
        elif follow_on.get(f.id):
            count = follow_on[f.id]
            more = "" if show_all else "; --show-all lists them"
            line += f" (+{count} follow-on finding{'s' if count != 1 else ''}{more})"
        lines.append(line)
    if not summary:
        return "".join(f"{line}\n" for line in lines)
    counts = report.counts()
    if report.error is not None:
        tail = f"{path}: not checked: {escape(report.error)}"
    elif not report.findings:
        tail = f"{path}: no findings"
    else:
        parts = [f"{n} {name}{'s' if n != 1 and name != 'info' else ''}" for name, n in counts.items()]
        total = sum(counts.values())
        tail = f"{path}: {', '.join(parts)}" + (f" ({shown} shown)" if shown < total else "")
    if statistics:
        per_rule: dict[str, int] = {}
        for finding in report.findings:
            key = escape(f"{finding.code} {finding.rule}")
            per_rule[key] = per_rule.get(key, 0) + finding.weight
        lines += [tail, *(f"  {count:>7}  {rule}" for rule, count in sorted(per_rule.items()))]
        figures = [f"  {key}: {value}" for key, value in (report.stats or {}).items()]
        tail = "\n".join([f"{path}: qemu-img check figures:", *figures] if figures else [])
    return "\n".join(line for line in [*lines, tail] if line) + "\n"
