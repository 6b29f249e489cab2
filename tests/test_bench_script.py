"""benchmarks/bench.py's command line and run validation (no benchmark is run,
no timing asserted)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("qcow2lint_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_default_runs_every_scenario(bench: ModuleType) -> None:
    args = bench.parse_args([])
    assert args.scenario == list(bench.SCENARIOS)
    assert args.lint_argv == ["qcow2lint"]


def test_groups_expand_in_order_without_duplicates(bench: ModuleType) -> None:
    args = bench.parse_args(["--scenario", "batch", "--scenario", "startup", "--scenario", "startup-1g"])
    assert args.scenario == ["batch", "startup-version", "startup-1g"]


@pytest.mark.parametrize(
    "argv", [["--rounds", "0"], ["--qcow2lint", ""], ["--scenario", "nope"], ["--qcow2lint", "'unclosed"]]
)
def test_bad_arguments_are_usage_errors(bench: ModuleType, argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(argv)
    assert exc.value.code == bench.EXIT_USAGE


def test_every_target_names_known_scenarios(bench: ModuleType) -> None:
    for target in bench.TARGETS:
        assert set(target.scenarios) <= set(bench.SCENARIOS), target.name


def test_children_run_without_pythondontwritebytecode(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = bench.child_environment()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PATH"] == bench.os.environ["PATH"]


@pytest.mark.parametrize(
    ("output", "codes", "problem"),
    [
        (b"img: no findings\n", [0], None),
        (b"img: 2 errors\n", [1], None),
        (b'Traceback (most recent call last):\n  File "x"\nImportError: x\n', [1], "traceback"),
        (b"", [0], "empty"),
        (b"usage: qcow2lint\n", [2], "exit code 2"),
    ],
)
def test_a_broken_qcow2lint_run_is_not_a_valid_run(
    bench: ModuleType, output: bytes, codes: list[int], problem: str | None
) -> None:
    entry = bench.Entry("qcow2lint check", (("qcow2lint", "check", "img"),), bench.OK_LINT, is_qcow2lint=True)
    found = bench.problem_with(entry, bench.Measured(0.1, 1000, codes, output))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
