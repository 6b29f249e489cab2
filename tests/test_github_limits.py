"""``--format github`` within GitHub's annotation limits (10 of each type
per step): the most severe findings are annotated, one notice says how many
more there are and where, and every finding stays in the log and the job
summary."""

from __future__ import annotations

import os
import re
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from harness import cli_argv

import qcow2lint
from qcow2lint.findings import Finding, Severity
from qcow2lint.report.github import MAX_ANNOTATIONS_PER_TYPE, github_step_summary, render_github

COMMAND = re.compile(r"^::(error|warning|notice) ")


def _finding(severity: Severity, index: int) -> Finding:
    code = {Severity.ERROR: "T0003", Severity.WARNING: "T0002", Severity.INFO: "T0001"}[severity]
    return Finding(f"t-{severity}", code, severity, index * 8, f"l1[{index}]", f"finding {index}")


def _types(output: str) -> Counter[str]:
    return Counter(m.group(1) for m in map(COMMAND.match, output.splitlines()) if m)


def test_within_the_limit_every_finding_is_annotated() -> None:
    findings = tuple(_finding(s, i) for s in Severity for i in range(MAX_ANNOTATIONS_PER_TYPE))
    output = render_github([qcow2lint.Report("a.qcow2", findings)])
    assert _types(output) == {"error": 10, "warning": 10, "notice": 10}
    assert "::group::" not in output and len(output.splitlines()) == 30


def test_over_the_limit_the_most_severe_are_annotated_and_the_rest_counted() -> None:
    mixed = tuple(_finding(s, i) for i in range(30) for s in (Severity.INFO, Severity.WARNING, Severity.ERROR))
    reports = [qcow2lint.Report("a.qcow2", mixed), qcow2lint.Report("gone.qcow2", error="gone.qcow2: no such file")]
    output = render_github(reports)
    lines = output.splitlines()
    assert _types(output) == {"error": 10, "warning": 10, "notice": 10}
    errors = [line for line in lines if line.startswith("::error ")]
    # the unreadable image is the most severe, then the first nine error findings
    assert errors[-1].startswith("::error file=gone.qcow2,title=qcow2lint::not checked")
    assert [re.search(r"finding (\d+)", e).group(1) for e in errors[:-1]] == [str(i) for i in range(9)]
    notices = [line for line in lines if line.startswith("::notice ")]
    assert len([n for n in notices if "title=T0001" in n]) == 9
    (more,) = [n for n in notices if "more findings" in n]
    assert "62 more findings (21 errors, 20 warnings, 21 notices) are not annotated" in more
    assert "job summary" in more and "qcow2lint: 62 findings not annotated" in more
    start, end = lines.index("::group::qcow2lint: 62 findings not annotated"), lines.index("::endgroup::")
    rest = lines[start + 1 : end]
    assert len(rest) == 62 and not any(line.startswith("::") for line in rest)
    assert rest[:3] == [  # report order
        "info T0001 t-info a.qcow2:0x48 [l1[9]] finding 9",
        "error T0003 t-error a.qcow2:0x48 [l1[9]] finding 9",
        "info T0001 t-info a.qcow2:0x50 [l1[10]] finding 10",
    ]
    summary = github_step_summary(reports)
    assert sum(1 for line in summary.splitlines() if line.startswith("| `a.qcow2` | `0x")) == 90


def test_the_images_take_the_annotations_in_turn() -> None:
    """One image with 100 errors must not take the annotations of another
    image's two: every image's first error before any image's second."""
    many = tuple(_finding(Severity.ERROR, i) for i in range(100))
    two = tuple(_finding(Severity.ERROR, i) for i in range(2))
    reports = [qcow2lint.Report("many.qcow2", many), qcow2lint.Report("two.qcow2", two)]
    errors = [line for line in render_github(reports).splitlines() if line.startswith("::error ")]
    assert [re.search(r"file=([^,]+),.*finding (\d+)", e).groups() for e in errors] == [
        *(("many.qcow2", str(i)) for i in range(8)),  # emitted in report order
        ("two.qcow2", "0"),
        ("two.qcow2", "1"),
    ]
    # severity first: a third image's warnings wait for every error
    reports.append(qcow2lint.Report("warn.qcow2", (_finding(Severity.WARNING, 0),)))
    reports.insert(0, qcow2lint.Report("one.qcow2", (_finding(Severity.ERROR, 5),)))
    errors = [line for line in render_github(reports).splitlines() if line.startswith("::error ")]
    files = Counter(re.search(r"file=([^,]+),", e).group(1) for e in errors)
    assert files == {"one.qcow2": 1, "many.qcow2": 7, "two.qcow2": 2}
    assert _types(render_github(reports))["warning"] == 1


@pytest.fixture(scope="module")
def five_hundred(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real image with 500 L2 entries that set a reserved bit."""
    folder = tmp_path_factory.mktemp("many")
    path = folder / "many.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    subprocess.run(["qemu-io", "-c", "write -q 0 32000k", str(path)], check=True, capture_output=True)
    with open(path, "r+b") as handle:
        handle.seek(40)
        (l1_offset,) = struct.unpack(">Q", handle.read(8))
        handle.seek(l1_offset)
        (l1_entry,) = struct.unpack(">Q", handle.read(8))
        l2_offset = l1_entry & 0x00FFFFFFFFFFFE00
        for index in range(500):
            handle.seek(l2_offset + 8 * index + 7)
            byte = handle.read(1)[0]
            handle.seek(-1, os.SEEK_CUR)
            handle.write(bytes([byte | 0x02]))
    (folder / "q.yaml").write_text("max-findings-per-rule: 0\n")
    return path


def test_a_real_image_with_500_findings(five_hundred: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        [*cli_argv(), "check", "--format", "github", "-c", str(five_hundred.parent / "q.yaml"), str(five_hundred)],
        capture_output=True,
        text=True,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 1, result.stderr
    types = _types(result.stdout)
    assert types["error"] == 10 and types["notice"] <= 10 and types["warning"] == 0
    assert "::notice title=qcow2lint%3A more findings::490 more findings (490 errors)" in result.stdout
    lines = result.stdout.splitlines()
    group = lines[lines.index("::group::qcow2lint: 490 findings not annotated") + 1 : lines.index("::endgroup::")]
    assert len(group) == 490 and all(line.startswith("error Q0701 l2-reserved-bits ") for line in group)
    rows = [line for line in summary.read_text().splitlines() if "l2-reserved-bits" in line]
    assert len(rows) == 500
