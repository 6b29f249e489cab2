"""The pre-commit hook (.pre-commit-hooks.yaml), run end to end with
``pre-commit try-repo`` on a throw-away git repository holding a clean and a
broken image, as docs/ci.md recommends.

try-repo installs the hook from a commit, so the current working tree of this
repository is copied into a temporary git repository and committed there
(never in the real one).  pre-commit is pip-installed into a throw-away
virtualenv and installs the hook's environment from the package index: the
end-to-end test carries the ``network`` marker and skips with one line when
the index cannot be reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

import imagebuilder as ib
import pytest
import yaml
from baseimages import PATCH_L1_INDEX
from harness import REPO_ROOT, Bases, pypi_host, require_host

NETWORK_SIGNS = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Could not find a version that satisfies",
    "No matching distribution found",
    "Network is unreachable",
)


def test_hook_definition() -> None:
    [hook] = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "qcow2lint"
    assert hook["entry"] == "qcow2lint check"
    assert hook["language"] == "python"
    assert hook["files"] == r"\.qcow2$"
    assert hook["types"] == ["file"]


def _git(*args: str, cwd: Path) -> None:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
    )
    subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        env=env,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def pre_commit(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """pre-commit, installed from PyPI into a throw-away virtualenv."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    require_host(pypi_host())
    env = tmp_path_factory.mktemp("pre-commit-venv") / "env"
    venv.EnvBuilder(with_pip=True).create(env)
    python = str(env / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "pre-commit"], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]
    return [python, "-m", "pre_commit"]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding this repository's working tree, committed."""
    repo = tmp_path_factory.mktemp("hookrepo") / "qcow2lint"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = REPO_ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    _git("init", "-q", cwd=repo)
    _git("add", "-A", "-f", cwd=repo)
    _git("commit", "-q", "-m", "working tree", cwd=repo)
    return repo


@pytest.mark.network
def test_try_repo_on_a_clean_and_a_broken_image(
    pre_commit: list[str],
    hook_repo: Path,
    base_images: Bases,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    project = tmp_path / "project"
    (project / "images").mkdir(parents=True)
    clean = base_images.copy("v3", project / "images", "clean.qcow2")
    broken = base_images.copy("v3", project / "images", "broken.qcow2")
    img = ib.Qcow2Image(broken)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    (project / "README.txt").write_text("not an image: the hook must not see it\n")
    _git("init", "-q", cwd=project)
    _git("add", "-A", cwd=project)
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path_factory.getbasetemp() / "pre-commit-home"))
    env.pop("PRE_COMMIT", None)

    def try_repo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*pre_commit, "try-repo", str(hook_repo), "qcow2lint", "--color", "never", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )

    everything = try_repo("--all-files")
    output = everything.stdout + everything.stderr
    if everything.returncode not in (0, 1) or (
        "Installing environment" in output and "Failed" in output and any(sign in output for sign in NETWORK_SIGNS)
    ):
        log = Path(env["PRE_COMMIT_HOME"]) / "pre-commit.log"
        detail = log.read_text()[-2000:] if log.exists() else output[-2000:]
        if any(sign in detail for sign in NETWORK_SIGNS):
            pytest.skip(f"pre-commit cannot install the hook's environment (no network?): {detail[-300:]}")
        pytest.fail(f"pre-commit try-repo failed (exit {everything.returncode}):\n{output}\n{detail}")
    assert everything.returncode == 1, output
    assert "qcow2lint" in output and "Failed" in output
    assert "images/broken.qcow2" in output and "l1-reserved-bits" in output
    assert "README.txt" not in output

    only_clean = try_repo("--files", str(clean.relative_to(project)))
    assert only_clean.returncode == 0, only_clean.stdout + only_clean.stderr
    assert "Passed" in only_clean.stdout
