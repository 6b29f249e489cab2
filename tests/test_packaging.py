"""Packaging: a regular (non-editable) install gives the `qcow2lint` command,
`python -m qcow2lint`, the built-in rules under their own import name, and
one version everywhere; the wheel and the sdist build offline without
warnings and carry the package data.

The install tests install from the package index into throw-away
virtualenvs (never into the interpreter running the tests): they carry the
``network`` marker and skip with one line when the index cannot be reached.
The build test needs only the setuptools of the interpreter running the
tests (the ``test`` extra asks for one new enough)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
from harness import REPO_ROOT, pypi_host, require_host

from qcow2lint import __version__


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with `pip install .` of this repository."""
    require_host(pypi_host())
    env = tmp_path_factory.mktemp("pkg") / "env"
    venv.EnvBuilder(with_pip=False).create(env)
    python = env / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(REPO_ROOT)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0 and "Could not find a version" in result.stderr:
        pytest.skip(f"the package index is not reachable: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    return env


@pytest.mark.network
def test_the_console_script_module_entry_and_version_agree(installed: Path) -> None:
    script = subprocess.run([str(installed / "bin" / "qcow2lint"), "--version"], capture_output=True, text=True)
    module = subprocess.run(
        [str(installed / "bin" / "python"), "-m", "qcow2lint", "--version"], capture_output=True, text=True
    )
    assert script.stdout == module.stdout == f"qcow2lint {__version__}\n"


@pytest.mark.network
def test_the_rules_install_as_qcow2lint_rules_and_not_as_rules(installed: Path, tmp_path: Path) -> None:
    python = str(installed / "bin" / "python")
    probe = (
        "import importlib.util as u; print(u.find_spec('qcow2lint_rules') is not None, u.find_spec('rules') is None)"
    )
    assert subprocess.run([python, "-c", probe], capture_output=True, text=True, cwd=tmp_path).stdout == "True True\n"
    rules = subprocess.run(
        [str(installed / "bin" / "qcow2lint"), "rules"], capture_output=True, text=True, cwd=tmp_path
    )
    assert rules.returncode == 0 and "Q0601  l1-reserved-bits" in rules.stdout


@pytest.mark.network
def test_pipx_install_gives_the_command(tmp_path: Path) -> None:
    """`pipx install .` with a pipx installed from PyPI into a throw-away virtualenv."""
    require_host(pypi_host())
    tools = tmp_path / "tools"
    venv.EnvBuilder(with_pip=True).create(tools)
    got = subprocess.run(
        [str(tools / "bin" / "python"), "-m", "pip", "install", "--quiet", "pipx"], capture_output=True, text=True
    )
    assert got.returncode == 0, got.stderr
    env = {
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
    }
    result = subprocess.run(
        [str(tools / "bin" / "python"), "-m", "pipx", "install", "--python", sys.executable, str(REPO_ROOT)],
        capture_output=True,
        text=True,
        env={**env, **_pip_environment()},
    )
    assert result.returncode == 0, result.stderr
    version = subprocess.run([str(tmp_path / "bin" / "qcow2lint"), "--version"], capture_output=True, text=True)
    assert version.stdout == f"qcow2lint {__version__}\n"


def _pip_environment() -> dict[str, str]:
    """The variables pip needs to reach its index here (certificates, config)."""
    keep = ("PIP_", "SSL_CERT", "REQUESTS_CA", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy")
    return {k: v for k, v in os.environ.items() if k.startswith(keep)}


@pytest.mark.network
def test_the_installed_package_ships_the_config_schema_and_invents_no_links(installed: Path, tmp_path: Path) -> None:
    """Issue 11: the schema is package data; a wheel has no rule pages, so
    without a docs URL the SARIF log links none."""
    import json

    qcow2lint = str(installed / "bin" / "qcow2lint")
    schema = subprocess.run([qcow2lint, "config", "--schema"], capture_output=True, text=True, cwd=tmp_path)
    shipped = (REPO_ROOT / "qcow2lint" / "schema" / "qcow2lint.schema.json").read_text()
    assert schema.returncode == 0 and schema.stdout == shipped
    probe = "from importlib.resources import files; print((files('qcow2lint') / 'schema' / 'qcow2lint.schema.json').is_file())"
    assert (
        subprocess.run(
            [str(installed / "bin" / "python"), "-c", probe], capture_output=True, text=True, cwd=tmp_path
        ).stdout
        == "True\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    sarif = subprocess.run(
        [qcow2lint, "check", "-f", "sarif", str(REPO_ROOT / "examples" / "demo.qcow2")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    driver = json.loads(sarif.stdout)["runs"][0]["tool"]["driver"]
    assert "informationUri" not in driver and not any("helpUri" in rule for rule in driver["rules"])


#: What the wheel must carry besides the modules: the package data, the
#: built-in rules' index and the licence.
WHEEL_DATA = (
    "qcow2lint/schema/qcow2lint.schema.json",
    "qcow2lint/presets/default.yaml",
    "qcow2lint/presets/pedantic.yaml",
    "qcow2lint/presets/strict.yaml",
    "qcow2lint/presets/untrusted.yaml",
    "qcow2lint_rules/_index.json",
    f"qcow2lint-{__version__}.dist-info/licenses/LICENSE",
)


def test_the_wheel_and_sdist_build_offline_without_warnings(tmp_path: Path) -> None:
    """The PEP 517 build (what `python -m build --no-isolation` runs) of a
    copy of the source: no setuptools warning (a deprecated licence table,
    a data directory missing from the packages) and every data file shipped."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(
            f"setuptools {setuptools.__version__} is older than the 77 the build needs (the test extra asks for it)"
        )
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copyfile(REPO_ROOT / name, source / name)
    for folder in ("qcow2lint", "rules"):
        shutil.copytree(REPO_ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    hooks = (
        "import sys; from setuptools import build_meta as hooks; out = sys.argv[1]; "  # the hooks rewrite sys.argv
        "hooks.build_sdist(out); hooks.build_wheel(out)"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    built = subprocess.run([sys.executable, "-c", hooks, str(out)], cwd=source, capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stderr[-2000:]
    # Setuptools' banners ("WARNING ... is deprecated") and Python warnings
    # ("SetuptoolsDeprecationWarning: ..."); not the rule file
    # header_crypt_aes_deprecated.py it copies.
    complaint = re.compile(r"(?i)warning\b|\bdeprecat")
    assert [line for line in (built.stdout + built.stderr).splitlines() if complaint.search(line)] == []
    [wheel_path] = out.glob("*.whl")
    [sdist_path] = out.glob("*.tar.gz")
    with zipfile.ZipFile(wheel_path) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"qcow2lint-{__version__}.dist-info/METADATA").decode()
    assert set(WHEEL_DATA) <= names, sorted(set(WHEEL_DATA) - names)
    assert "License-Expression: MIT" in metadata.splitlines() and "License-File: LICENSE" in metadata.splitlines()
    with tarfile.open(sdist_path) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "rules/_index.json", "qcow2lint/schema/qcow2lint.schema.json"} <= members
