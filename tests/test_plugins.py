"""The plugin door: a third-party package installed into a virtualenv adds
a rule that runs and is configurable, exactly like the built-in ones."""

from __future__ import annotations

import json
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

import imagebuilder as ib
from conftest import REPO_ROOT, TESTS_DIR


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv that sees the qcow2lint under test and has the example plugin.

    It sees the site directories of the interpreter running the tests (its
    .pth files included, so an editable install is this checkout), not the
    system's, which may hold another qcow2lint."""
    env = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    (Path(purelib) / "_qcow2lint_under_test.pth").write_text(f"import site; list(map(site.addsitedir, {dirs!r}))\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
         str(TESTS_DIR / "plugin_example")],
        check=True, capture_output=True, cwd=REPO_ROOT,
    )  # fmt: skip
    return python


def _qcow2lint(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "qcow2lint", *args], capture_output=True, text=True, cwd=cwd)


def test_a_plugin_rule_is_listed_runs_and_is_configurable(plugin_python: Path, tmp_path: Path) -> None:
    image = tmp_path / "big.qcow2"
    ib.create(image, 2 << 30)
    listed = _qcow2lint(plugin_python, "rules", cwd=tmp_path)
    assert listed.returncode == 0 and "X9001  example-virtual-size-limit" in listed.stdout

    quiet = _qcow2lint(plugin_python, "check", "--format", "json", str(image), cwd=tmp_path)
    assert quiet.returncode == 0, quiet.stderr
    findings = json.loads(quiet.stdout)["images"][0]["findings"]
    assert [f for f in findings if f["rule"] == "example-virtual-size-limit"] == []

    (tmp_path / "qcow2lint.yaml").write_text("rules:\n  example-virtual-size-limit: {max-size: 1073741824, level: error}\n")
    loud = _qcow2lint(plugin_python, "check", "--format", "json", str(image), cwd=tmp_path)
    assert loud.returncode == 1, loud.stderr
    [finding] = [f for f in json.loads(loud.stdout)["images"][0]["findings"] if f["rule"] == "example-virtual-size-limit"]
    assert finding["rule"] == "example-virtual-size-limit" and finding["severity"] == "error"
    assert finding["message"] == "virtual size 2147483648 exceeds the site limit 1073741824"

    (tmp_path / "qcow2lint.yaml").write_text("rules:\n  example-virtual-size-limit: {max-siz: 1}\n")
    bad = _qcow2lint(plugin_python, "check", str(image), cwd=tmp_path)
    assert bad.returncode == 2 and "did you mean 'max-size'" in bad.stderr


def test_the_plugin_is_not_visible_outside_its_virtualenv(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "qcow2lint", "rules"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "example-virtual-size-limit" not in result.stdout
