"""Clear one-line errors (issue 9): ``check`` and ``dump`` word an input
that cannot be read the same way, and running out of memory is said to be
that, never an exception name with an empty message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qcow2lint.text import exception_text


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qcow2lint", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize("kind", ["missing", "fifo", "directory-for-dump", "empty"])
def test_check_and_dump_word_an_unreadable_image_alike(tmp_path: Path, kind: str) -> None:
    name = "image.qcow2"
    if kind == "fifo":
        os.mkfifo(tmp_path / name)
    elif kind == "empty":
        (tmp_path / name).write_bytes(b"")
    elif kind == "directory-for-dump":
        (tmp_path / name).mkdir()
    lines = {}
    for command in (["check"], ["dump"], ["dump", "--json"]):
        if kind == "directory-for-dump" and command == ["check"]:
            continue  # check searches a directory for images
        proc = _cli(*command, name, cwd=tmp_path)
        if kind == "empty" and command == ["check"]:
            assert proc.returncode == 1  # an empty file is a finding (header-file-too-short)
            continue
        assert proc.returncode == 2, proc
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        if kind != "empty":
            assert proc.stdout == ""
        lines[" ".join(command)] = proc.stderr
    if kind in ("missing", "fifo"):
        assert len(set(lines.values())) == 1, lines
        expected = {"missing": "no such file or directory", "fifo": "is not a regular file"}[kind]
        assert f"qcow2lint: error: {name}: {expected}" in lines["check"]


def test_exception_text_is_never_empty() -> None:
    assert exception_text(MemoryError()) == "out of memory (MemoryError)"
    assert exception_text(MemoryError("l2 tables")) == "out of memory (MemoryError): l2 tables"
    assert exception_text(ValueError()) == "ValueError"
    assert exception_text(ValueError("a\nb" + "x" * 1000)).startswith("ValueError: a\\nb")
    assert len(exception_text(ValueError("x" * 10_000))) < 300


def test_cli_reports_memory_exhaustion_as_such(tmp_path: Path) -> None:
    """The command's last line of defence: a MemoryError anywhere is one
    line saying memory ran out, exit 2."""
    code = (
        "import sys, qcow2lint.cli as cli\ndef exhausted(*args): raise MemoryError\ncli.run = exhausted\ncli.main()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "qcow2lint: error: out of memory (MemoryError)\n"


def test_runner_reports_memory_exhaustion_for_the_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qcow2lint import runner

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(runner, "lint_image", exhausted)
    runner.init_worker(runner.Job(), registry=object(), config=object())
    outcome = runner.check_one("big.qcow2")
    assert outcome.report.error == "big.qcow2: out of memory (MemoryError) while checking this image"
