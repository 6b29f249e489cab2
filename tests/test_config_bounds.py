"""Hostile configurations are refused with one clear line (issue 9): too
large, alias bombs, deep nesting, non-regular files; values in messages are
quoted shortened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qcow2lint.config import MAX_CONFIG_BYTES, MAX_YAML_NODES, ConfigError, load_config
from qcow2lint.registry import load_registry

LAUGHS = "\n".join(
    [f"a0: &a0 [{', '.join(['lol'] * 9)}]"]
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    + ["rules: {l1-too-large: *a9}", ""]
)


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return load_registry()


def _refused(registry, path: Path) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        load_config(registry, path)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_larger_than_one_mib_is_refused(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\nrules: {}\n")
    assert "larger than 1 MiB" in _refused(registry, path)
    path.write_text("# " + "x" * (MAX_CONFIG_BYTES - 20) + "\nrules: {}\n")  # just under: fine
    assert load_config(registry, path).source == str(path)


def test_a_pyproject_larger_than_one_mib_is_refused(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "pyproject.toml"
    path.write_text("[tool.qcow2lint]\n" + "# " + "x" * MAX_CONFIG_BYTES + "\n")
    assert "larger than 1 MiB" in _refused(registry, path)


def test_billion_laughs_is_refused(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "laughs.yaml"
    path.write_text(LAUGHS)
    assert f"more than {MAX_YAML_NODES} nodes" in _refused(registry, path)


def test_aliases_under_the_budget_still_work(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "aliases.yaml"
    path.write_text("per-file-ignores:\n  a.qcow2: &r [l1-too-large, Q0110]\n  b.qcow2: *r\n")
    config = load_config(registry, path)
    assert [entry.rules for entry in config.per_file_ignores][0] == [entry.rules for entry in config.per_file_ignores][
        1
    ]


def test_deep_nesting_is_refused(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "deep.yaml"
    path.write_text("rules: " + "[" * 20000 + "]" * 20000 + "\n")
    message = _refused(registry, path)
    assert "nested too deeply" in message or "more than" in message


def test_values_are_quoted_shortened(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "long.yaml"
    path.write_text('max-findings-per-rule: "' + "x" * 200_000 + '"\n')
    message = _refused(registry, path)
    assert "must be a whole number" in message and "..." in message
    path.write_text("rules:\n  " + "k" * 1000 + ": enable\n")
    assert "unknown rule 'kkk" in _refused(registry, path)
    # a structure under the node budget but with a huge repr
    path.write_text("rules: {l1-too-large: [&a [" + ", ".join(["y" * 200] * 100) + "], *a, *a, *a]}\n")
    assert "expected enable, disable or a mapping" in _refused(registry, path)


@pytest.mark.parametrize("kind", ["directory", "fifo", "device"])
def test_non_regular_files_are_refused(registry, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    if kind == "directory":
        path = tmp_path / "conf.d"
        path.mkdir()
        expected = "is a directory"
    elif kind == "fifo":
        path = tmp_path / "fifo.yaml"
        os.mkfifo(path)
        expected = "is not a regular file"
    else:
        path = Path("/dev/zero")
        expected = "is not a regular file"
    assert expected in _refused(registry, path)


@pytest.mark.parametrize("name", ["missing.yaml", "fifo", "laughs.yaml"])
def test_cli_exits_2_with_one_line(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "fifo":
        os.mkfifo(path)
    elif name == "laughs.yaml":
        path.write_text(LAUGHS)
    proc = subprocess.run(
        [sys.executable, "-m", "qcow2lint", "config", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr.count("\n") == 1 and proc.stderr.startswith("qcow2lint: error: ")
    assert "Traceback" not in proc.stderr
