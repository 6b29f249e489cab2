"""The command line as the table in qcow2lint/options.py declares it: how
arguments are read, what a usage error says (one line naming the option and
what it accepts, exit 2), and what --help shows."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from harness import REPO_ROOT, run_cli

from qcow2lint.options import BY_NAME, Colour, Format, Level, UsageError, parse

DEMO = REPO_ROOT / "examples" / "demo.qcow2"


def _presets() -> list[str]:
    from qcow2lint.config import presets

    return presets()


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["check", "-j", "abc", "x"], "--jobs: expected a whole number >= 0, got 'abc'"),
        (["check", "--jobs=-1", "x"], "--jobs: expected a whole number >= 0, got '-1'"),
        (["check", "x", "--jobs"], "--jobs: needs a value: a whole number >= 0"),
        (
            ["check", "--format", "xml", "x"],
            "--format: expected one of text, json, jsonl, sarif, sarif-github, github, gitlab, junit, got 'xml'",
        ),
        (["check", "--fail-level", "fatal", "x"], "--fail-level: expected one of error, warning, info, got 'fatal'"),
        (["check", "--color=sometimes", "x"], "--color: expected one of auto, always, never, got 'sometimes'"),
        (["check", "--bogus", "x"], "check: no such option: --bogus"),
        (["check", "--selct", "Q07", "x"], "check: no such option: --selct (did you mean --select?)"),
        (["check", "-x", "x"], "check: no such option: -x"),
        (["check", "--quiet=yes", "x"], "--quiet: takes no value, got '--quiet=yes'"),
        (["check"], "check: missing argument IMAGE..."),
        (["rule"], "rule: missing argument NAME"),
        (["dump", "a", "b"], "dump: unexpected extra argument 'b'"),
        (["dump", "-j", "a"], "dump: no such option: -j"),
        (
            ["chek", "x"],
            "no such command 'chek' (did you mean check?) (commands: check, dump, map, config, rules, rule, completion)",
        ),
        (
            ["--install-completion"],
            "--install-completion is gone: write the output of 'qcow2lint completion SHELL' where your shell reads "
            "completions",
        ),
        (["completion", "tcsh"], "SHELL: expected one of bash, zsh, fish, got 'tcsh'"),
        (["--show-completion", "tcsh"], "--show-completion: expected one of bash, zsh, fish, got 'tcsh'"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_option(args: list[str], line: str) -> None:
    result = run_cli(*args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"qcow2lint: error: {line}\n")


def test_preset_errors_and_help_name_the_presets_of_the_presets_directory() -> None:
    presets = _presets()
    assert {"default", "strict", "pedantic", "untrusted"} <= set(presets)
    result = run_cli("check", "--preset", "strictest", DEMO)
    assert result.returncode == 2
    assert (
        result.stderr
        == f"qcow2lint: error: --preset: unknown preset 'strictest', expected one of {', '.join(presets)}\n"
    )
    help_text = " ".join(run_cli("config", "--help").stdout.split())
    assert f"[one of: {', '.join(presets)}]" in help_text


def test_help_shows_plain_metavars_and_choices() -> None:
    text = run_cli("check", "--help").stdout
    assert text.startswith("Usage: qcow2lint check [OPTIONS] IMAGE...\n")
    assert "{" not in text.split("\n", 1)[0] and "<int range>" not in text and "<str>" not in text
    assert "  -j, --jobs N " in text and "  -c, --config FILE " in text and "  --preset NAME " in text
    flat = " ".join(text.split())
    assert "[one of: text, json, jsonl, sarif, sarif-github, github, gitlab, junit; default: text]" in flat
    assert "Usage: qcow2lint rule [OPTIONS] NAME\n" in run_cli("rule", "--help").stdout
    assert "Usage: qcow2lint dump [OPTIONS] IMAGE\n" in run_cli("dump", "--help").stdout


def test_no_command_prints_the_help_and_exits_2() -> None:
    result = run_cli()
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("Usage: qcow2lint [OPTIONS] COMMAND [ARGS]...\n")
    assert "\n  completion " in result.stderr and "__complete" not in result.stderr


def test_help_and_version_win_over_the_rest() -> None:
    assert parse(["check", "-j", "abc", "--help"]).action == "help"
    assert parse(["--version", "check"]).action == "version"
    with pytest.raises(UsageError, match="no such option: --bogus"):
        parse(["check", "--bogus", "-h"])  # the option must still be a known one


def test_options_anywhere_bundled_attached_and_after_a_double_dash() -> None:
    values = parse(["check", "a", "-qj2", "--select", "Q07,l1-reserved-bits", "b", "--select=Q01", "--", "-c"]).values
    assert values.images == ["a", "b", "-c"]
    assert (values.quiet, values.jobs, values.config) == (True, 2, None)
    assert values.select == ["Q07,l1-reserved-bits", "Q01"]
    last = parse(["check", "-f", "json", "--format", "sarif", "-c", "one.yaml", "--config=two.yaml", "x"]).values
    assert (last.output_format, last.config) == (Format.sarif, Path("two.yaml"))


def test_every_option_has_its_declared_default() -> None:
    values = parse(["check", "x"]).values
    assert (values.output_format, values.fail_level, values.colour, values.jobs) == (
        Format.text,
        Level.error,
        Colour.auto,
        1,
    )
    for option in BY_NAME["check"].options:
        if option.dest != "help":
            expected = None if option.multiple else option.default
            assert getattr(values, option.dest) == expected, option.name


def test_short_and_long_spellings_are_the_same_option() -> None:
    for command in BY_NAME.values():
        flags = [flag for option in command.options for flag in option.flags]
        assert len(flags) == len(set(flags)), command.name
        for option in command.options:
            assert option.flags[0].startswith("--"), option.flags


def test_dump_json_is_qemus_two_documents_and_json_document_is_one() -> None:
    two = run_cli("dump", "--json", DEMO).stdout
    decoder = json.JSONDecoder()
    header, end = decoder.raw_decode(two)
    extensions, end2 = decoder.raw_decode(two, end + 2)
    assert two[end : end + 2] == "\n\n" and two[end2:] == "\n"
    one = json.loads(run_cli("dump", "--json-document", DEMO).stdout)
    assert one == {"header": header, "header_extensions": extensions}
    assert header["magic"] == 0x514649FB and isinstance(extensions, list)


def test_version_answers_without_the_commands() -> None:
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qcow2lint", "--version"], capture_output=True, text=True
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert proc.stdout.startswith("qcow2lint ") and "qcow2lint.options" in imported
    assert not {"qcow2lint.cli", "qcow2lint.config", "textwrap", "difflib"} & imported


def test_the_readme_usage_block_and_docs_cli_md_come_from_the_table() -> None:
    """``python -m qcow2lint.gen`` writes both from the table (test_docs
    keeps them fresh); every command's usage there is its --help's."""
    import re

    from qcow2lint.options import COMMANDS, usage_block

    readme = (REPO_ROOT / "README.md").read_text()
    block = re.search(r"<!-- usage:start[^>]*-->\n(.*?)<!-- usage:end -->", readme, re.S)
    assert block is not None and block.group(1) == usage_block()
    cli_md = (REPO_ROOT / "docs" / "cli.md").read_text()
    for command in COMMANDS:
        if command.hidden:
            assert f"qcow2lint {command.name}" not in cli_md + block.group(1)
            continue
        usage = run_cli(command.name, "--help").stdout.splitlines()[0]
        assert usage == f"Usage: {command.usage()}" and command.usage() in block.group(1)
        for option in command.options:
            assert (f"| `{option.signature()}` |" in cli_md) != option.hidden, option.name
