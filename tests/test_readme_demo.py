"""The README's demo output and the API's doctests are produced by the code,
so they cannot go stale."""

from __future__ import annotations

import doctest
import importlib
import re

import pytest
from harness import REPO_ROOT, run_cli


def test_the_readme_demo_output_is_what_the_command_prints() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- demo:start[^>]*-->\n```\n\$ (.*?)\n(.*?)```\n<!-- demo:end -->", readme, re.S)
    assert block is not None, "README.md has no demo block between its demo markers"
    command, shown = block.group(1), block.group(2)
    argv = command.split()
    assert argv[0] == "qcow2lint"
    result = run_cli(*argv[1:], cwd=REPO_ROOT)
    assert result.returncode == 1, result.stderr
    assert result.stdout == shown, "README.md's demo output is stale: paste the command's output into it"


@pytest.mark.parametrize(
    "module", ["qcow2lint", "qcow2lint.links", "qcow2lint.config", "qcow2lint.selection", "qcow2lint.inputs"]
)
def test_the_api_doctests_run(module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples in the docstrings (qcow2lint.read, qcow2lint.lint, ...)
    run from the repository's root, as their text says."""
    monkeypatch.chdir(REPO_ROOT)
    target = importlib.import_module(module)
    import qcow2lint

    result = doctest.testmod(target, extraglobs={"qcow2lint": qcow2lint}, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module} has no doctest"
    assert result.failed == 0
