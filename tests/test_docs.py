"""Generated documentation stays in step with the registry."""

from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path

import pytest
import yaml
from harness import REPO_ROOT, TESTS_DIR, run_cli

import qcow2lint
from qcow2lint import gen
from qcow2lint.config import presets
from qcow2lint.registry import load_registry
from qcow2lint.report.rulesdoc import ANSWERED, rules_markdown


def test_docs_rules_md_is_generated_from_the_registry() -> None:
    """Regenerate with `python -m qcow2lint.gen`."""
    assert (REPO_ROOT / "docs" / "rules.md").read_text() == rules_markdown(load_registry())
    assert run_cli("rules", "--markdown").stdout == (REPO_ROOT / "docs" / "rules.md").read_text()


@pytest.mark.parametrize("name", gen.GENERATED)
def test_the_generated_file_is_current(name: str) -> None:
    text = gen.expected(REPO_ROOT, load_registry())[name]
    assert (REPO_ROOT / name).read_text() == text, f"{name} is stale: run `python -m qcow2lint.gen` in the repository"


def test_the_generator_names_the_stale_file_and_rewrites_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(REPO_ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs").mkdir()
    shutil.copyfile(REPO_ROOT / "README.md", tmp_path / "README.md")  # with rules/, marks the repository
    for name in gen.expected(REPO_ROOT, load_registry()):  # the fixed files and the rule pages
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    assert gen.main(["--check", str(tmp_path)]) == 0
    (tmp_path / "config.yaml").write_text("rules: {}\n")
    assert gen.main(["--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out == "config.yaml is stale: run `python -m qcow2lint.gen` in the repository\n"
    assert gen.main([str(tmp_path)]) == 0
    assert (tmp_path / "config.yaml").read_text() == (REPO_ROOT / "config.yaml").read_text()
    assert gen.stale(tmp_path, load_registry()) == []


def test_the_readme_links_the_rules_reference_instead_of_copying_it() -> None:
    """The rule table lives in docs/rules.md alone (generated); the README
    links to it."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert "](docs/rules.md)" in readme
    assert "rules:start" not in readme
    assert "| Q0101 |" not in readme


README_LIMIT = 200


def test_the_readme_is_a_front_door() -> None:
    """At most 200 lines, starting with the two commands of the repository's
    contract: install and check the bundled example, and run the tests."""
    readme = (REPO_ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LIMIT
    blocks = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    assert blocks[:2] == [
        "python3 -m pip install . && qcow2lint check --dump examples/demo.qcow2",
        "sudo apt-get update && sudo apt-get install -y qemu-utils && python3 -m pip install -e '.[test]'"
        " && python3 -m pytest -q",
    ]
    assert readme.index("PEP 668") < readme.index("python3 -m venv .venv")
    # pipx installs into ~/.local/bin, which is not on a fresh machine's PATH
    for text in (readme, (REPO_ROOT / "docs" / "getting-started.md").read_text()):
        assert "pipx install ." in text and "pipx ensurepath" in text
    # the CLI's generated usage block goes right after the demo
    assert re.search(r"<!-- demo:end -->\n<!-- usage:start[^>]*-->\n.*?<!-- usage:end -->", readme, re.S)


def test_every_relative_link_in_the_readme_resolves() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert targets
    assert [t for t in targets if not (REPO_ROOT / t).exists()] == []


def user_docs() -> list[Path]:
    """What users read: the README, docs/, the benchmark and fuzzer READMEs
    and the Action's descriptions."""
    return [
        REPO_ROOT / "README.md",
        *sorted((REPO_ROOT / "docs").rglob("*.md")),
        REPO_ROOT / "benchmarks" / "README.md",
        REPO_ROOT / "fuzz" / "README.md",
        REPO_ROOT / "action.yml",
    ]


#: Development history that means nothing to a user: issue and pull-request
#: numbers, session notes, commit ids. GitLab's Code Quality "issues" are a
#: report format, not a reference.
HISTORY = re.compile(
    r"(?<!GitLab )(?<!Code Quality )\bissues?\b"
    r"|\bsessions?\b"
    r"|(?<![\w&/])#\d{1,5}\b"  # six hex digits are a colour
    r"|\b(?:commit|PR|pull request)\s+[0-9a-f]{7,40}\b"
    r"|(?<![\w.-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}(?![\w.-])",
    re.I,
)


@pytest.mark.parametrize(
    "text",
    ["before issue 13", "issue 9", "the issue's target", "see #12", "commit 239c29a", "(239c29a)", "a session note"],
)
def test_the_history_pattern_finds_references(text: str) -> None:
    assert HISTORY.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "one GitLab Code Quality issue per root",
        "GitLab issues are one per root-cause finding",
        "mask 0x3f000000000001fe",
        "fuzz/failures/time-0b9bbece2614.qcow2",
        "size 2147483647",
        "# 512 GiB",
        "[Rule plugins](#rule-plugins)",
        "| `leaked` | `#780000` |",
    ],
)
def test_the_history_pattern_spares_ordinary_text(text: str) -> None:
    assert not HISTORY.search(text)


def test_user_docs_cite_no_issue_numbers_commits_or_sessions() -> None:
    hits = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
        for path in user_docs()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if HISTORY.search(line)
    ]
    assert hits == []


def test_every_rule_option_is_in_the_configuration_options_table() -> None:
    """docs/configuration.md's table of rule options (written by hand, for
    its explanations) names every option of every built-in rule with its
    default as YAML writes it."""
    text = (REPO_ROOT / "docs" / "configuration.md").read_text()
    table = text[text.index("| rule | option | default |") :].split("\n\n")[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        options = re.findall(r"`([^`]+)`", cells[1])
        defaults = re.findall(r"`([^`]+)`", cells[2])
        assert len(options) == len(defaults), line
        for rule in re.findall(r"`([^`]+)`", cells[0]):
            rows.update({(rule, option): default for option, default in zip(options, defaults, strict=True)})
    wanted = {
        (rule.name, option): yaml.safe_dump(default, default_flow_style=True).removesuffix("...\n").strip()
        for rule in load_registry()
        for option, default in rule.options.items()
    }
    assert rows == wanted


def test_every_rule_page_shows_its_options_as_yaml() -> None:
    """The configuration snippet on each rule page is valid YAML that gives
    the rule's defaults (not Python's True, None, 'x')."""
    for rule in load_registry():
        page = (REPO_ROOT / "docs" / "rules" / f"{rule.name}.md").read_text()
        snippet = re.search(r"```yaml\n(rules:\n.*?)```", page, re.S)
        assert snippet is not None, rule.name
        settings = yaml.safe_load(snippet.group(1))["rules"][rule.name]
        assert settings == {"level": str(rule.severity), **rule.options}, rule.name
        for option, default in rule.options.items():
            shown = yaml.safe_dump(default, default_flow_style=True).removesuffix("...\n").strip()
            assert f"| `{option}` | " in page and f"| `{shown}` |" in page, (rule.name, option)


def test_the_rule_command_shows_options_as_yaml() -> None:
    """``qcow2lint rule NAME`` lists each option's default as a YAML file
    would write it, so it can be pasted into a configuration."""
    for rule in load_registry():
        if not rule.options:
            continue
        shown = run_cli("rule", rule.name).stdout
        listed = shown[shown.index("\nOptions:\n") :].splitlines()[2:]
        for option, default in rule.options.items():
            line = next(line for line in listed if line.startswith(f"  {option}: "))
            written = yaml.safe_dump(default, default_flow_style=True).removesuffix("...\n").strip()
            assert line.startswith(f"  {option}: {written} ("), (rule.name, line)


def test_the_api_docs_describe_every_parameter_of_lint() -> None:
    guide = (REPO_ROOT / "docs" / "getting-started.md").read_text()
    api = guide[guide.index("## The Python API") :]
    parameters = inspect.signature(qcow2lint.lint).parameters
    signature = re.search(r"`qcow2lint\.lint\(([^)]*)\)`", api)
    assert signature is not None
    assert [p.split("=")[0].strip() for p in signature.group(1).split(",") if p.strip() != "*"] == list(parameters)
    for name in parameters:
        assert f"* `{name}`:" in api, name
    doc = inspect.getdoc(qcow2lint.lint) or ""
    for name in presets():
        assert f"``{name}``" in doc and f"`{name}`" in api, name


def test_the_action_offers_every_preset() -> None:
    action = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
    description = action["inputs"]["preset"]["description"]
    listed = re.search(r"\(([^)]*)\)", description)
    assert listed is not None
    assert sorted(name.strip() for name in listed.group(1).split(",")) == presets()


def test_every_catalogue_rule_is_a_rule_or_answered() -> None:
    """Every rule name of the defect catalogue (tests/data/catalogue-rules.txt)
    is registered or answered in docs/rules.md."""
    listed = (TESTS_DIR / "data" / "catalogue-rules.txt").read_text().splitlines()
    names = {line.strip() for line in listed if line.strip() and not line.startswith("#")}
    assert len(names) > 100, "the vendored catalogue list is incomplete"
    registered = {rule.name for rule in load_registry()}
    missing = sorted(names - registered - set(ANSWERED))
    assert not missing, f"catalogue rows neither a rule nor answered in docs/rules.md: {missing}"


def test_rule_documentation_cites_the_spec_not_the_catalogue() -> None:
    """Users get the qcow2 specification and docs/rules.md, not the
    project's internal defect catalogue: no rule docstring and no comment in
    the package cites its sections."""
    sources = [*(REPO_ROOT / "rules").glob("*.py"), *(REPO_ROOT / "qcow2lint").rglob("*.py")]
    citing = [path.name for path in sources if "catalogue §" in path.read_text()]
    assert citing == []


def test_the_source_layout_names_every_module() -> None:
    """docs/contributing.md's layout lists every module and package of
    qcow2lint/, so that a new one is described where contributors look."""
    guide = (REPO_ROOT / "docs" / "contributing.md").read_text()
    layout = guide[guide.index("## Source layout") : guide.index("## Rule plugins")]
    package = REPO_ROOT / "qcow2lint"
    names = [f"qcow2lint/{p.name}" for p in package.glob("*.py") if not p.name.startswith("_")]
    names += [f"qcow2lint/{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
    missing = [name for name in sorted(names) if f"\n{name} " not in layout]
    assert missing == []
