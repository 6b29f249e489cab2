"""Shared fixtures and helpers for the qcow2lint test suite.

* ``run_cli(*args)`` runs the installed ``qcow2lint`` as a subprocess (the
  console script next to the running interpreter, else ``python -m
  qcow2lint``) and returns ``(returncode, stdout, stderr)``.
* ``lint_json(path, *args)`` runs ``qcow2lint check --format json`` and returns
  the parsed report; ``rules_fired(report)`` groups its findings by rule.
* ``base_images`` builds each recipe of :mod:`baseimages` once per session;
  ``base_images.copy(name, tmp_path)`` gives a test its own writable copy.
* ``--update-goldens`` rewrites the golden files under tests/golden/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from baseimages import BASES

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
GOLDEN_DIR = TESTS_DIR / "golden"

Report = dict[str, Any]
Finding = dict[str, Any]


def pytest_addoption(parser: pytest.Parser) -> None:
    """Register ``--update-goldens``."""
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite tests/golden/* from the current qcow2lint output instead of comparing",
    )


@pytest.fixture(scope="session")
def update_goldens(request: pytest.FixtureRequest) -> bool:
    """True when the run was started with ``--update-goldens``."""
    return bool(request.config.getoption("--update-goldens"))


# --------------------------------------------------------------------------
# Running the CLI
# --------------------------------------------------------------------------


class CliResult(NamedTuple):
    """What one qcow2lint run produced."""

    returncode: int
    stdout: str
    stderr: str


def cli_argv() -> list[str]:
    """The command that starts qcow2lint in the interpreter running the tests."""
    script = Path(sys.executable).parent / "qcow2lint"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "qcow2lint"]


def _unprivileged_prefix() -> list[str]:
    """A command prefix under which file permission bits bind even for root.

    Tests run as root, where chmod 000 / 0444 do not stop open(). Dropping
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set (setpriv,
    util-linux) makes uid 0 obey the owner permission bits again.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make file permissions bind for root")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    probe = subprocess.run(prefix + ["true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and setpriv cannot drop capabilities here: {probe.stderr!r}")
    return prefix


def _run_cli(args: tuple[str | os.PathLike[str], ...], cwd: Path | None, unprivileged: bool) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="200", PYTHONUTF8="1")
    prefix = _unprivileged_prefix() if unprivileged else []
    return subprocess.run(
        prefix + cli_argv() + [str(a) for a in args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def run_cli(
    *args: str | os.PathLike[str], cwd: Path | None = None, unprivileged: bool = False
) -> CliResult:
    """Run ``qcow2lint ARGS...`` and return ``(returncode, stdout, stderr)`` as text.

    With ``unprivileged`` the run cannot bypass file permissions even as root
    (see :func:`_unprivileged_prefix`), so a chmod'ed file really is
    unreadable / read-only for qcow2lint.
    """
    proc = _run_cli(args, cwd, unprivileged)
    return CliResult(
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )


def run_cli_bytes(
    *args: str | os.PathLike[str], cwd: Path | None = None, unprivileged: bool = False
) -> tuple[int, bytes, bytes]:
    """Like :func:`run_cli` but returns stdout and stderr as raw bytes (for byte-exact goldens)."""
    proc = _run_cli(args, cwd, unprivileged)
    return proc.returncode, proc.stdout, proc.stderr


def assert_no_traceback(result: CliResult) -> None:
    """qcow2lint must never show a Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def assert_one_line_error(result: CliResult) -> None:
    """Exit 2 with exactly one non-empty line on stderr and no traceback."""
    assert_no_traceback(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, f"exit {result.returncode}, stderr={result.stderr!r}"
    assert len(lines) == 1, f"expected one stderr line, got {result.stderr!r}"


def lint_json(path: Path | Iterable[Path], *extra_args: str) -> Report:
    """``qcow2lint check --format json PATH... EXTRA`` parsed; exit must be 0 or 1.

    The returned dict gets an extra key ``"_returncode"`` with the exit code.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    result = run_cli("check", "--format", "json", *paths, *extra_args)
    assert_no_traceback(result)
    assert result.returncode in (0, 1), (
        f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"--format json printed invalid JSON ({exc}):\n{result.stdout}") from exc
    report["_returncode"] = result.returncode
    return report


def findings(report: Report, image: int = 0) -> list[Finding]:
    """The findings of image number ``image`` in a JSON report."""
    return list(report["images"][image]["findings"])


def rules_fired(report: Report, image: int = 0) -> dict[str, list[Finding]]:
    """``{rule name: [findings]}`` for one image of a JSON report."""
    fired: dict[str, list[Finding]] = {}
    for f in findings(report, image):
        fired.setdefault(f["rule"], []).append(f)
    return fired


def format_findings(items: Iterable[Finding]) -> str:
    """Findings as readable lines, for assertion messages."""
    return "\n".join(
        f"  {f.get('severity')} {f.get('rule')} @{f.get('offset')!r} {f.get('location')}: {f.get('message')}"
        for f in items
    ) or "  (none)"


def write_config(directory: Path, text: str, name: str = "qcow2lint.yaml") -> Path:
    """Write a config file and return its path."""
    path = directory / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------
# Base images
# --------------------------------------------------------------------------


class ImageCache:
    """Builds each :data:`baseimages.BASES` recipe once, on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._reports: dict[str, Report] = {}

    def path(self, name: str) -> Path:
        """Path of the (shared, never modified) base image ``name``."""
        path = self.root / f"{name}.qcow2"
        if not path.exists():
            tmp = self.root / f"{name}.partial.qcow2"
            BASES[name].build(tmp)
            tmp.rename(path)
        return path

    def copy(self, name: str, directory: Path, filename: str | None = None) -> Path:
        """A private writable copy of base ``name`` in ``directory``."""
        dst = directory / (filename or f"{name}.qcow2")
        shutil.copyfile(self.path(name), dst)
        return dst

    def report(self, name: str) -> Report:
        """The JSON lint report of the unmodified base (run once per session)."""
        if name not in self._reports:
            self._reports[name] = lint_json(self.path(name))
        return self._reports[name]


@pytest.fixture(scope="session")
def base_images(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    """Session cache of the clean base images."""
    return ImageCache(tmp_path_factory.mktemp("bases"))
