"""``check --format jsonl``: one line per image as it is checked, then the
run's totals; and what ``--scheduler`` costs a run that does not use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import Bases, run_cli, run_cli_bytes


@pytest.fixture
def images(base_images: Bases, tmp_path: Path) -> list[Path]:
    """A clean image, a broken one, a file that is no image, a missing one, a v2 image."""
    broken = base_images.copy("v3", tmp_path, "b.qcow2")
    image = ib.Qcow2Image(broken)
    image.set_l1(PATCH_L1_INDEX, image.l1[PATCH_L1_INDEX] | 0x100)
    junk = tmp_path / "c.qcow2"
    junk.write_bytes(b"junk")
    return [
        base_images.copy("v3", tmp_path, "a.qcow2"),
        broken,
        junk,
        tmp_path / "missing.qcow2",
        base_images.copy("v2", tmp_path, "e.qcow2"),
    ]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_jsonl_lines_are_the_json_reports_entries(images: list[Path], jobs: str) -> None:
    args = ("check", "--statistics", "--dump", "--jobs", jobs, *images)
    code, out, err = run_cli_bytes(*args, "--format", "jsonl")
    json_code, json_out, json_err = run_cli_bytes(*args, "--format", "json")
    document = json.loads(json_out)
    lines = out.decode().splitlines()
    assert len(lines) == len(images) + 1
    parsed = [json.loads(line) for line in lines]
    assert parsed[:-1] == document["images"]
    assert [entry["path"] for entry in parsed[:-1]] == [str(path) for path in images]
    assert parsed[-1] == {"tool": document["tool"], "summary": document["summary"]}
    assert parsed[-1]["summary"]["images"] == 5 and parsed[-1]["summary"]["unreadable"] == 1
    assert (code, err) == (json_code, json_err) == (2, err)
    assert "missing.qcow2" in err.decode() and "dump" in parsed[0]


def test_jsonl_to_a_file_and_silent(images: list[Path], tmp_path: Path) -> None:
    target = tmp_path / "report.jsonl"
    on_stdout = run_cli("check", "-f", "jsonl", *images[:3])
    to_file = run_cli("check", "-f", "jsonl", "-o", target, *images[:3])
    assert target.read_text() == on_stdout.stdout
    assert "checked 3 images" in to_file.stdout  # the terminal gets the text report
    assert to_file.returncode == on_stdout.returncode == 1
    silent = run_cli("check", "-f", "jsonl", "--silent", *images[:3])
    assert (silent.returncode, silent.stdout) == (1, "")


def test_jsonl_with_a_baseline_generation_prints_only_the_count(images: list[Path], tmp_path: Path) -> None:
    result = run_cli("check", "-f", "jsonl", "--generate-baseline", tmp_path / "base.json", *images[:2])
    assert result.stdout.startswith("wrote ") and result.stdout.count("\n") == 1


def test_jsonl_writes_each_line_before_the_next_image_is_checked(
    images: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from qcow2lint import runner
    from qcow2lint.checkcommand import check
    from qcow2lint.options import parse

    real_run = runner.run
    written: list[str] = []

    def watching(*args: Any, **kwargs: Any) -> Iterator[runner.Outcome]:
        for index, outcome in enumerate(real_run(*args, **kwargs)):
            written.extend(capsys.readouterr().out.splitlines())
            # every earlier image's line is out before this one is handed over
            # (the missing fourth argument has its line without being checked)
            assert len(written) == index + (index >= 3)
            yield outcome

    monkeypatch.setattr(runner, "run", watching)
    paths = [str(path) for path in images]
    with pytest.raises(SystemExit) as exit_info:
        check(parse(["check", "-f", "jsonl", *paths]).values)
    written.extend(capsys.readouterr().out.splitlines())
    assert exit_info.value.code == 2
    assert [json.loads(line).get("path") for line in written] == [*paths, None]


_IMPORTS = """
import runpy, sys
sys.argv = ["qcow2lint", *sys.argv[1:]]
try:
    runpy.run_module("qcow2lint", run_name="__main__")
except SystemExit:
    pass
finally:
    heavy = {"dask", "distributed", "pandas", "pyarrow", "qcow2lint.fleet"}
    sys.stderr.write("IMPORTED " + repr(sorted(heavy & set(sys.modules))) + "\\n")
"""


@pytest.mark.parametrize("output_format", ["text", "jsonl"])
def test_a_plain_check_imports_no_fleet_library(images: list[Path], output_format: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS, "check", "-f", output_format, "--jobs", "2", *map(str, images[:2])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "l1-reserved-bits" in proc.stdout, proc.stderr
    assert "IMPORTED []" in proc.stderr.splitlines()


def test_scheduler_without_the_fleet_extra_names_it(images: list[Path], tmp_path: Path) -> None:
    # Shadow Dask as if it were not installed.
    shadow = tmp_path / "shadow"
    for name in ("dask", "distributed"):
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f"raise ImportError('no {name}', name={name!r})\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    proc = subprocess.run(
        [sys.executable, "-m", "qcow2lint", "check", "--scheduler", "local", str(images[0])],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.splitlines()
    assert line == textwrap.dedent(
        "qcow2lint: error: --scheduler needs Dask (dask is not installed): pip install 'qcow2lint[fleet]'"
    )
