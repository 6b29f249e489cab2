"""The plugin door: a third-party distribution on ``sys.path`` adds a rule
through the ``qcow2lint.rules`` entry-point group; the rule runs and is
configurable, exactly like the built-in ones.

The example plugin (tests/plugin_example) is installed into a directory of
its own that only the child ``qcow2lint`` processes see (``PYTHONPATH``),
never into the interpreter running the tests, so the tests work the same in
a virtualenv and with the system interpreter:

* ``unpacked`` (default run): the package and its ``.dist-info`` metadata
  (entry points read from the example's pyproject.toml) are written the
  way an installer lays out a wheel, without network access;
* ``pip`` (``network`` marker): ``pip install --target`` of the example
  project, which needs the package index for its build backend.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import TESTS_DIR, pypi_host, require_host

PLUGIN_PROJECT = TESTS_DIR / "plugin_example"


def _unpacked(site: Path) -> None:
    """Lay the example out as an installed distribution: package + dist-info."""
    pyproject = tomllib.loads((PLUGIN_PROJECT / "pyproject.toml").read_text())
    project = pyproject["project"]
    for package in pyproject["tool"]["setuptools"]["packages"]:
        shutil.copytree(PLUGIN_PROJECT / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, points in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {target}" for name, target in points.items())
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _pip(site: Path) -> None:
    """``pip install --target`` of the example project (needs the package index)."""
    require_host(pypi_host())
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(PLUGIN_PROJECT)],
        capture_output=True,
        text=True,
        cwd=site,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(_unpacked, id="unpacked"),
        pytest.param(_pip, id="pip", marks=pytest.mark.network),
    ],
)
def plugin_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the installed example plugin (not on this interpreter's path)."""
    site = tmp_path_factory.mktemp("plugin-site")
    request.param(site)
    return site


def _qcow2lint(site: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return subprocess.run([sys.executable, "-m", "qcow2lint", *args], capture_output=True, text=True, cwd=cwd, env=env)


def test_a_plugin_rule_is_listed_runs_and_is_configurable(plugin_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "big.qcow2"
    ib.create(image, 2 << 30)
    listed = _qcow2lint(plugin_path, "rules", cwd=tmp_path)
    assert listed.returncode == 0 and "X9001  example-virtual-size-limit" in listed.stdout, listed.stderr

    quiet = _qcow2lint(plugin_path, "check", "--format", "json", str(image), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    findings = json.loads(quiet.stdout)["images"][0]["findings"]
    assert [f for f in findings if f["rule"] == "example-virtual-size-limit"] == []

    (tmp_path / "qcow2lint.yaml").write_text(
        "rules:\n  example-virtual-size-limit: {max-size: 1073741824, level: error}\n"
    )
    loud = _qcow2lint(plugin_path, "check", "--format", "json", str(image), cwd=tmp_path)
    assert loud.returncode == 1, loud.stderr
    [finding] = [
        f for f in json.loads(loud.stdout)["images"][0]["findings"] if f["rule"] == "example-virtual-size-limit"
    ]
    assert finding["rule"] == "example-virtual-size-limit" and finding["severity"] == "error"
    assert finding["message"] == "virtual size 2147483648 exceeds the site limit 1073741824"

    (tmp_path / "qcow2lint.yaml").write_text("rules:\n  example-virtual-size-limit: {max-siz: 1}\n")
    bad = _qcow2lint(plugin_path, "check", str(image), cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'max-size'" in bad.stderr


def test_the_plugin_is_not_visible_outside_its_directory(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "qcow2lint", "rules"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "example-virtual-size-limit" not in result.stdout
