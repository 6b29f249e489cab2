"""The text report: one line per finding, then a summary line per image."""

from __future__ import annotations

from qcow2lint.engine import ImageReport


def render_text(report: ImageReport, statistics: bool = False) -> str:
    """``IMAGE:0xOFFSET: CODE name severity [location] message`` lines, a
    summary, and with ``statistics`` the findings per rule and qemu-img
    check's figures."""
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
    if statistics:
        per_rule: dict[str, int] = {}
        for finding in report.findings:
            key = f"{finding.code} {finding.rule}"
            per_rule[key] = per_rule.get(key, 0) + 1
        lines += [summary, *(f"  {count:>7}  {rule}" for rule, count in sorted(per_rule.items()))]
        figures = [f"  {key}: {value}" for key, value in (report.stats or {}).items()]
        summary = "\n".join([f"{report.path}: qemu-img check figures:", *figures] if figures else [])
    return "\n".join(line for line in [*lines, summary] if line) + "\n"
