"""The text report: one line per finding, then a summary line per image."""

from __future__ import annotations

from qcow2lint.engine import ImageReport


def render_text(report: ImageReport) -> str:
    """``IMAGE:0xOFFSET: CODE name severity [location] message`` lines and a summary."""
    lines = [
        f"{report.path}:{f.offset:#x}: {f.code} {f.rule} {f.severity} [{f.location}] {f.message}"
        for f in report.findings
    ]
    counts = report.counts()
    if report.error is not None:
        summary = f"{report.path}: not checked: {report.error}"
    elif not report.findings:
        summary = f"{report.path}: no findings"
    else:
        parts = [f"{n} {name}{'s' if n != 1 and name != 'info' else ''}" for name, n in counts.items()]
        summary = f"{report.path}: {', '.join(parts)}"
    return "\n".join([*lines, summary]) + "\n"
