"""Shell completion: ``qcow2lint completion SHELL`` prints the script for
the shell named, whatever shell runs it, and each script completes
commands, options, choices and rule names when loaded in its shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import run_cli

from qcow2lint.completion import candidates
from qcow2lint.options import presets

PRESETS = presets()


@pytest.fixture(scope="module")
def path_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An environment whose PATH finds ``qcow2lint`` (this interpreter's)."""
    folder = tmp_path_factory.mktemp("bin")
    wrapper = folder / "qcow2lint"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m qcow2lint "$@"\n')
    wrapper.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"}


def _shell(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (apt-get install {name})")
    return found


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_is_the_named_shells_whatever_shell_asks(shell: str) -> None:
    printed = run_cli("completion", shell)
    assert printed.returncode == 0 and printed.stderr == ""
    assert "completion for qcow2lint: " in printed.stdout.splitlines()[0] + printed.stdout.splitlines()[1]
    assert run_cli("--show-completion", shell).stdout == printed.stdout
    assert run_cli(f"--show-completion={shell}").stdout == printed.stdout
    others = {"bash", "zsh", "fish"} - {shell}
    for other in others:
        assert run_cli("completion", other).stdout != printed.stdout


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["qcow2lint", ""], ["check", "dump", "map", "config", "rules", "rule", "completion"]),
        (["qcow2lint", "check", "--pre"], ["--preset"]),
        (["qcow2lint", "check", "--preset", ""], PRESETS),
        (["qcow2lint", "config", "--preset=st"], ["--preset=strict"]),
        (["qcow2lint", "check", "-f", "sarif"], ["sarif", "sarif-github"]),
        (["qcow2lint", "check", "--fail-level", ""], ["error", "warning", "info"]),
        (["qcow2lint", "check", "--color", "a"], ["auto", "always"]),
        (["qcow2lint", "check", "-qj", ""], []),
        (["qcow2lint", "check", "--select", "l1-reserved-b"], ["l1-reserved-bits"]),
        (["qcow2lint", "check", "--ignore", "Q07,l2-reserved-b"], ["Q07,l2-reserved-bits"]),
        (["qcow2lint", "check", "--extend-select", "l2-reserved-b"], ["l2-reserved-bits"]),
        (["qcow2lint", "rule", "l2-reserved-b"], ["l2-reserved-bits"]),
        (["qcow2lint", "check", "-c", "x"], [":files:"]),
        (["qcow2lint", "check", "--config=x"], [":files:--config="]),
        (["qcow2lint", "check", "im"], [":files:"]),
        (["qcow2lint", "completion", ""], ["bash", "zsh", "fish"]),
        (["qcow2lint", "rules", "--"], ["--reference-config", "--markdown", "--help"]),
    ],
)
def test_candidates(words: list[str], expected: list[str]) -> None:
    assert candidates("zsh", words) == expected


def test_bash_splits_at_equals_and_gets_the_value_alone() -> None:
    assert candidates("bash", ["qcow2lint", "check", "--preset", "=", "st"]) == ["strict"]
    assert candidates("bash", ["qcow2lint", "check", "--preset", "="]) == [f"={name}" for name in PRESETS]


def test_bash_loads_the_script_and_completes(path_env: dict[str, str]) -> None:
    bash = _shell("bash")
    script = (
        "source <(qcow2lint completion bash) && complete -p qcow2lint && "
        "COMP_WORDS=(qcow2lint check --preset '') COMP_CWORD=3 && _qcow2lint && printf '%s\\n' \"${COMPREPLY[@]}\" && "
        'COMP_WORDS=(qcow2lint check --preset = un) COMP_CWORD=4 && _qcow2lint && echo "${COMPREPLY[*]}" && '
        'COMP_WORDS=(qcow2lint check --sel) COMP_CWORD=2 && _qcow2lint && echo "${COMPREPLY[*]}"'
    )
    done = subprocess.run([bash, "--norc", "-c", script], capture_output=True, text=True, env=path_env, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "complete -F _qcow2lint qcow2lint"
    assert lines[1:] == [*PRESETS, "untrusted", "--select"]


def test_bash_completes_file_names_for_images(path_env: dict[str, str], tmp_path: Path) -> None:
    bash = _shell("bash")
    (tmp_path / "disk.qcow2").write_bytes(b"")
    script = (
        "source <(qcow2lint completion bash) && COMP_WORDS=(qcow2lint check di) COMP_CWORD=2 && _qcow2lint && "
        'echo "${COMPREPLY[*]}"'
    )
    done = subprocess.run([bash, "--norc", "-c", script], capture_output=True, text=True, env=path_env, cwd=tmp_path)
    assert done.stdout == "disk.qcow2\n", done.stderr


def test_zsh_loads_the_script_and_proposes_the_presets(path_env: dict[str, str], tmp_path: Path) -> None:
    zsh = _shell("zsh")
    # compadd is a builtin of completion widgets: a function of the same name
    # prints what the script offers.
    script = (
        "autoload -U compinit && compinit -u -d $ZDOTDIR/.zcompdump && source <(qcow2lint completion zsh) && "
        "print -r -- $_comps[qcow2lint] && compadd() { shift; print -rl -- $@ } && "
        "words=(qcow2lint check --preset '') && CURRENT=4 && _qcow2lint && "
        "words=(qcow2lint rule l2-reserved-b) && CURRENT=3 && _qcow2lint"
    )
    env = {**path_env, "ZDOTDIR": str(tmp_path)}
    done = subprocess.run([zsh, "-f", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == ["_qcow2lint", *PRESETS, "l2-reserved-bits"]


def test_fish_loads_the_script_and_proposes_the_presets(path_env: dict[str, str]) -> None:
    fish = _shell("fish")
    script = (
        "qcow2lint completion fish | source; complete -C 'qcow2lint check --preset '; "
        "complete -C 'qcow2lint check --format=sarif'; complete -C 'qcow2lint ru'"
    )
    done = subprocess.run(
        [fish, "--no-config", "-c", script], capture_output=True, text=True, env=path_env, timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.splitlines() == [*PRESETS, "--format=sarif", "--format=sarif-github", "rule", "rules"]
