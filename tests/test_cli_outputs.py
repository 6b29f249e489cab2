"""The command line's CI plumbing: every --format from one engine run,
--output-file, baselines, and the GitHub step summary."""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import assert_one_line_error, cli_argv, cli_on_a_terminal, run_cli


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A clean image and one with an L2 entry's reserved bit set."""
    folder = tmp_path_factory.mktemp("outputs")
    clean, bad = folder / "clean.qcow2", folder / "bad.qcow2"
    for path in (clean, bad):
        ib.create(path, 64 << 20, {"cluster_size": 65536})
        ib.write(path, 0, 65536, 0x5A)
    image = ib.Qcow2Image(bad)
    _, l2_offset, index = image.guest_to_l2(0)
    image.set_l2(l2_offset, index, image.l2_tables[l2_offset][index] | 0x2)
    return clean, bad


@pytest.mark.parametrize("fmt", ["json", "sarif", "sarif-github", "github", "gitlab", "junit"])
def test_every_format_reports_the_finding_and_keeps_the_exit_code(images: tuple[Path, Path], fmt: str) -> None:
    clean, bad = images
    result = run_cli("check", "--format", fmt, str(clean), str(bad))
    assert result.returncode == 1, result.stderr
    assert "l2-reserved-bits" in result.stdout or "Q0701" in result.stdout
    if fmt in ("json", "sarif", "sarif-github", "gitlab"):
        json.loads(result.stdout)
    if fmt == "junit":
        assert ET.fromstring(result.stdout).get("failures") == "1"


def test_output_file_gets_the_format_and_the_terminal_the_text(images: tuple[Path, Path], tmp_path: Path) -> None:
    _, bad = images
    out = tmp_path / "report.sarif"
    result = run_cli("check", "--format", "sarif", "--output-file", str(out), str(bad))
    assert result.returncode == 1
    assert "Q0701 l2-reserved-bits error" in result.stdout
    assert json.loads(out.read_text())["runs"][0]["results"][0]["ruleId"] == "Q0701"


def test_a_baseline_hides_known_findings_and_reports_new_ones(images: tuple[Path, Path], tmp_path: Path) -> None:
    clean, bad = images
    image_path, baseline = tmp_path / "image.qcow2", tmp_path / "baseline.json"
    image_path.write_bytes(bad.read_bytes())
    first = run_cli("check", "--generate-baseline", str(baseline), str(image_path))
    # Issue 11: generating a baseline is not a check: it says what it wrote and exits 0.
    assert first.returncode == 0 and baseline.is_file()
    assert first.stdout == f"wrote 1 entry to {baseline}\n"
    assert run_cli("check", "--baseline", str(baseline), str(image_path)).returncode == 0
    ib.Qcow2Image(image_path).set_header_padding(1, 0x01)  # a new defect in the same image
    result = run_cli("check", "--baseline", str(baseline), "--fail-level", "warning", str(image_path))
    assert result.returncode == 1
    assert "header-padding-nonzero" in result.stdout and "l2-reserved-bits" not in result.stdout
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    failed = run_cli("check", "--baseline", str(broken), str(clean))
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1


def test_github_format_appends_a_step_summary(images: tuple[Path, Path], tmp_path: Path) -> None:
    _, bad = images
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    result = subprocess.run(
        [*cli_argv(), "check", "--format", "github", str(bad)],
        capture_output=True,
        text=True,
        env={**os.environ, "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert result.returncode == 1 and result.stdout.startswith("::error ")
    text = summary.read_text()
    assert text.startswith("# earlier step\n") and "l2-reserved-bits" in text


def test_colour_only_on_a_terminal_and_never_with_no_color(images: tuple[Path, Path]) -> None:
    """Piped output has no escape codes; on a pseudo-terminal the severities
    are coloured unless NO_COLOR is set."""
    _, bad = images
    assert "\033[" not in run_cli("check", str(bad)).stdout

    # No progress line (it shares the terminal and would draw after 1 s on a
    # busy machine): the delay is an hour, so the outcome does not depend on speed.
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    environment["QCOW2LINT_PROGRESS_DELAY"] = "3600"
    assert b"\033[1;31merror\033[0m" in cli_on_a_terminal(["check", str(bad)], environment)
    assert b"\033[" not in cli_on_a_terminal(["check", str(bad)], {**environment, "NO_COLOR": "1"})


@pytest.mark.parametrize(
    "args",
    [
        ["check", "--output-file", "locked/out.json", "-f", "json"],
        ["check", "--generate-baseline", "locked/baseline.txt"],
        ["map", "-o", "locked/map.html"],
    ],
    ids=["output-file", "generate-baseline", "map"],
)
def test_an_output_in_a_directory_that_cannot_be_searched_is_one_line(
    images: tuple[Path, Path], tmp_path: Path, args: list[str]
) -> None:
    """The output's directory cannot be entered (mode 000): one line naming
    the option and the reason, exit 2, no image checked (not an internal
    error from looking at a path inside it)."""
    clean, _ = images
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked").chmod(0)
    try:
        result = run_cli(*args, clean, cwd=tmp_path, unprivileged=True)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert_one_line_error(result)
    option = args[1]
    assert result.stderr == f"qcow2lint: error: {option} {args[2]}: permission denied\n"
