"""Everyday command-line use (issue 11): rule selection, quiet and silent
output, colour, -h, -j, exclusion, the run's summary line and statistics,
help texts and shell completion."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from harness import REPO_ROOT, cli_argv, cli_on_a_terminal, run_cli

DEMO = REPO_ROOT / "examples" / "demo.qcow2"
DEMO_RULES = ["autoclear-unknown-bits", "header-padding-nonzero", "l2-reserved-bits"]
FINDING = re.compile(r"^\S.*:0x[0-9a-f]+: (Q\d{4}) (\S+) (error|warning|info) ")


def _rules(stdout: str) -> list[str]:
    return [m.group(2) for m in map(FINDING.match, stdout.splitlines()) if m]


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    """A directory with two copies of the demo image and a new image (clean:
    its trailing partial cluster is judged only by the off-by-default
    file-trailing-partial-cluster)."""
    folder = tmp_path / "images"
    (folder / "fixtures").mkdir(parents=True)
    shutil.copyfile(DEMO, folder / "a.qcow2")
    shutil.copyfile(DEMO, folder / "fixtures" / "b.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(folder / "new.qcow2"), "1M"], check=True)
    return folder


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--select", "Q07"], ["l2-reserved-bits"]),
        (["--select", "Q02,header-padding-nonzero"], ["autoclear-unknown-bits", "header-padding-nonzero"]),
        (["--select", "Q0203", "--select", "Q15"], ["autoclear-unknown-bits", "file-trailing-partial-cluster"]),
        (["--ignore", "Q07", "--ignore", "Q1501"], ["autoclear-unknown-bits", "header-padding-nonzero"]),
        (["--select", "ALL", "--ignore", "Q01,Q02"], ["l2-reserved-bits", "file-trailing-partial-cluster"]),
        (["--select", "Q07", "--extend-select", "q0110"], ["header-padding-nonzero", "l2-reserved-bits"]),
    ],
)
def test_select_ignore_and_extend_select_take_names_codes_and_prefixes(options: list[str], expected: list[str]) -> None:
    result = run_cli("check", *options, DEMO)
    assert sorted(_rules(result.stdout)) == sorted(expected), result.stdout + result.stderr


def test_selection_applies_on_top_of_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "q.yaml"
    config.write_text("rules:\n  l2-reserved-bits: disable\n  Q0203: {level: error}\n")
    assert _rules(run_cli("check", "-c", config, DEMO).stdout) == [r for r in DEMO_RULES if r != "l2-reserved-bits"]
    result = run_cli("check", "-c", config, "--select", "Q02", "--extend-select", "l2-reserved-bits", DEMO)
    assert result.stdout.splitlines()[:2] == [
        line for line in result.stdout.splitlines() if "Q0203" in line or "Q0701" in line
    ]
    assert "Q0203 autoclear-unknown-bits error" in result.stdout  # the configured level stays
    assert _rules(result.stdout) == ["autoclear-unknown-bits", "l2-reserved-bits"]
    shown = run_cli(
        "config", "-c", config, "--select", "Q02", "--extend-select", "l2-reserved-bits", "--ignore", "Q0204"
    )
    assert shown.returncode == 0
    lines = {line.split(":")[0].strip(): line for line in shown.stdout.splitlines() if line.startswith("  ")}
    assert "enabled by --extend-select" in lines["l2-reserved-bits"] and f"{config}" in lines["l2-reserved-bits"]
    assert "enabled: false" in lines["dirty-bit-set"] and "disabled by --ignore" in lines["dirty-bit-set"]
    assert "not in --select" in lines["header-padding-nonzero"]
    assert "enabled: true" in lines["autoclear-unknown-bits"]
    assert "-> command line" in shown.stdout


@pytest.mark.parametrize("option", ["--select", "--ignore", "--extend-select"])
def test_an_unknown_selector_is_one_line_with_a_suggestion(option: str) -> None:
    result = run_cli("check", option, "l2-reserved-bit", DEMO)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (
        f"qcow2lint: error: {option}: 'l2-reserved-bit' is no rule name, code or code prefix (like Q07) "
        "(did you mean 'l2-reserved-bits'?)\n"
    )
    assert run_cli("check", option, "Q99", DEMO).returncode == 2


def test_quiet_prints_the_findings_and_one_summary_line(images: Path) -> None:
    result = run_cli("check", "--quiet", images)
    lines = result.stdout.splitlines()
    assert result.returncode == 1
    assert len(lines) == 7 and all(FINDING.match(line) for line in lines[:-1])
    assert lines[-1] == "checked 3 images: 2 errors, 4 warnings, 0 info (2 images with findings)"
    clean = run_cli("check", "-q", images / "new.qcow2")
    assert clean.stdout == "checked 1 image: 0 errors, 0 warnings, 0 info (0 images with findings)\n"


def test_silent_prints_nothing_but_writes_files(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = run_cli("check", "--silent", "-f", "json", "-o", out, images)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")
    assert out.is_file() and '"l2-reserved-bits"' in out.read_text()
    assert run_cli("check", "-s", "-f", "github", images).stdout == ""
    missing = run_cli("check", "-s", images / "missing.qcow2")
    assert missing.returncode == 2 and missing.stdout == "" and missing.stderr.count("\n") == 1


def test_a_multi_image_run_ends_with_one_summary_line_and_run_statistics(images: Path) -> None:
    result = run_cli("check", images, "--statistics")
    text = result.stdout
    assert "checked 3 images: 2 errors, 4 warnings, 0 info (2 images with findings)\n" in text
    totals = text[text.index("findings per rule over 3 images:") :].splitlines()
    assert totals[1:] == [
        "        2  Q0110 header-padding-nonzero",
        "        2  Q0203 autoclear-unknown-bits",
        "        2  Q0701 l2-reserved-bits",
    ]
    single = run_cli("check", DEMO).stdout
    assert "checked" not in single and single.endswith("demo.qcow2: 1 error, 2 warnings, 0 info\n")


def test_exclude_skips_paths_in_directory_searches_only(images: Path, tmp_path: Path) -> None:
    result = run_cli("check", "-q", "--exclude", "fixtures", images)
    assert "fixtures" not in result.stdout and "checked 2 images" in result.stdout
    result = run_cli("check", "-q", "--exclude", "**/fixtures/**", "--exclude", "new.qcow2", images)
    assert "checked 1 image:" in result.stdout
    config = tmp_path / ".qcow2lint.yaml"
    config.write_text("exclude: ['images/fixtures/**']\n")
    via_config = run_cli("check", "-q", "images", cwd=tmp_path)
    assert "fixtures" not in via_config.stdout and "checked 2 images" in via_config.stdout, via_config.stderr
    from_elsewhere = run_cli("check", "-q", "-c", config, images)  # patterns are relative to the file
    assert "fixtures" not in from_elsewhere.stdout
    named = run_cli("check", "-q", "--exclude", "fixtures", images / "fixtures" / "b.qcow2")
    assert "checked 1 image: 1 error" in named.stdout  # a file named on the command line is checked
    everything = run_cli("check", "--exclude", "*.qcow2", images)
    assert everything.returncode == 2 and "or all are excluded" in everything.stderr
    assert "exclude:" in run_cli("config", "--exclude", "x/**").stdout


def test_color_auto_always_never_and_the_environment() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env["QCOW2LINT_PROGRESS_DELAY"] = "3600"  # no progress line on the terminal, however slow the machine
    red = "\033[1;31merror\033[0m"

    def piped(*args: str, **extra: str) -> str:
        return subprocess.run(
            [*cli_argv(), "check", *args, str(DEMO)], capture_output=True, text=True, env={**env, **extra}
        ).stdout

    assert red not in piped()
    assert red in piped("--color", "always")
    assert red in piped("--color", "always", NO_COLOR="1")  # the option beats the environment
    assert red in piped(FORCE_COLOR="1")
    assert red not in piped(FORCE_COLOR="0")
    assert red not in piped(FORCE_COLOR="1", NO_COLOR="1")
    assert red not in piped("--color", "never", FORCE_COLOR="1")
    assert red.encode() in cli_on_a_terminal(["check", str(DEMO)], env)
    assert b"\033[" not in cli_on_a_terminal(["check", "--color", "never", str(DEMO)], env)


def test_dash_j_is_jobs_everywhere(images: Path) -> None:
    parallel = run_cli("check", "-q", "-j", "2", "--select", "Q07", images)  # workers apply the selection too
    assert parallel.returncode == 1 and _rules(parallel.stdout) == ["l2-reserved-bits", "l2-reserved-bits"]
    dumped = run_cli("dump", "-j", DEMO)
    assert dumped.returncode == 2 and "-j" in dumped.stderr
    assert run_cli("dump", "--json", DEMO).stdout.startswith("{")


COMMANDS = ["check", "dump", "rule", "rules", "config", "completion"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_argument_and_option_has_help_and_dash_h_works(command: str) -> None:
    from qcow2lint.options import BY_NAME

    declared = BY_NAME[command]
    for param in [*declared.arguments, *declared.options]:
        assert param.help, f"{command} {param.dest} has no help"
    short, long = run_cli(command, "-h"), run_cli(command, "--help")
    assert short.returncode == 0 and short.stdout == long.stdout
    for argument in declared.arguments:
        assert argument.help.split()[0] in short.stdout  # the argument's text, not just its name
    for option in declared.options:
        assert (option.name in short.stdout) != option.hidden, option.name


def test_check_help_lists_the_exit_codes() -> None:
    text = run_cli("check", "--help").stdout
    assert "Exit codes:" in text
    for code in ("0  no finding", "1  findings at or above", "2  usage error"):
        assert code in text


def test_output_targets_are_checked_before_any_work(tmp_path: Path) -> None:
    for option in ("-o", "--output-file", "--generate-baseline"):
        result = run_cli("check", option, tmp_path / "no" / "such" / "dir" / "out.json", tmp_path / "missing.qcow2")
        assert result.returncode == 2 and result.stdout == ""
        (line,) = result.stderr.splitlines()  # the target's line, not the missing image's
        assert "no such directory" in line and "missing.qcow2" not in line
    result = run_cli("check", "-o", tmp_path, DEMO)
    assert result.returncode == 2 and "is a directory" in result.stderr and result.stdout == ""
