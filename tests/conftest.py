"""Fixtures and options of the qcow2lint test suite (the helpers live in harness.py).

* ``base_images``: every named clean base (harness.Bases), built once per
  session; ``base_images.copy(name, tmp_path)`` gives a test its own copy.
* ``row_images``: each rule row's patched image, built once per session.
* ``--update-goldens`` rewrites the golden files under tests/golden/.
* The differential test's summary (images compared with ``qemu-img check``,
  skipped and why) is printed at the end of the run.
* Tests marked ``network`` need the package index or npm; the default run
  deselects them (``-m "not network"`` in pyproject's addopts), ``-m network``
  runs them, and they skip with one line when the registry cannot be reached.
"""

from __future__ import annotations

import pytest
from harness import DIFFERENTIAL_KEY, Bases, RowImages, differential_summary


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The differential test's report: its cases' verdicts (recorded as a
    user property, so they reach this process from every xdist worker)."""
    verdicts = [
        value
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", "") == "call"
        for name, value in getattr(report, "user_properties", ())
        if name == DIFFERENTIAL_KEY
    ]
    if verdicts:
        terminalreporter.write_line("")
        terminalreporter.write_line(differential_summary(verdicts))


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


@pytest.fixture(scope="session")
def base_images(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    """Session cache of the clean base images."""
    return Bases(tmp_path_factory.mktemp("bases"))


@pytest.fixture(scope="session")
def row_images(base_images: Bases, tmp_path_factory: pytest.TempPathFactory) -> RowImages:
    """Session cache of the rule rows' patched images."""
    return RowImages(base_images, tmp_path_factory.mktemp("rows"))
