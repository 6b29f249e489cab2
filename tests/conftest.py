"""Fixtures and options of the qcow2lint test suite (the helpers live in harness.py).

* ``base_images``: every named clean base (harness.Bases), built once per
  session; ``base_images.copy(name, tmp_path)`` gives a test its own copy.
* ``row_images``: each rule row's patched image, built once per session.
* ``--update-goldens`` rewrites the golden files under tests/golden/.
* Tests marked ``network`` need the package index or npm; the default run
  deselects them (``-m "not network"`` in pyproject's addopts), ``-m network``
  runs them, and they skip with one line when the registry cannot be reached.
"""

from __future__ import annotations

import pytest
from harness import Bases, RowImages


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Keep the tests of one file on one xdist worker (``--dist loadgroup``:
    a file's module and session images are built once), unless a test names
    its own group (the rule rows: one group per row table)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


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
