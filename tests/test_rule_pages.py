"""Rule pages (docs/rules/NAME.md), their reproductions, SARIF's links to
them, and the configuration's JSON Schema."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from harness import REPO_ROOT, cli_argv, run_cli

from qcow2lint import gen
from qcow2lint.aliases import RETIRED
from qcow2lint.configschema import config_schema
from qcow2lint.registry import INTERNAL_ERROR, load_registry
from qcow2lint.report.rulesdoc import doc_sections

REGISTRY = load_registry()
PAGES = REPO_ROOT / "docs" / "rules"
SCHEMA_FILE = REPO_ROOT / "qcow2lint" / "schema" / "qcow2lint.schema.json"


@pytest.mark.parametrize("name", sorted(n for n in gen.expected(REPO_ROOT, REGISTRY) if n.startswith("docs/rules/")))
def test_every_rule_page_is_current(name: str) -> None:
    text = gen.expected(REPO_ROOT, REGISTRY)[name]
    assert _read(REPO_ROOT / name) == text, f"{name} is stale: run `python -m qcow2lint.gen` in the repository"


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def test_a_page_per_rule_linked_from_the_index_and_no_orphans() -> None:
    names = {p.stem for p in PAGES.glob("*.md")}
    assert names == {rule.name for rule in REGISTRY} | {INTERNAL_ERROR}
    index = (REPO_ROOT / "docs" / "rules.md").read_text()
    for name in names:
        assert f"](rules/{name}.md)" in index
    assert gen.stale(REPO_ROOT, REGISTRY) == []


def test_the_generator_removes_the_page_of_a_rule_that_is_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(REPO_ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copyfile(REPO_ROOT / "README.md", tmp_path / "README.md")  # with rules/, marks the repository
    for name in gen.expected(REPO_ROOT, REGISTRY):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    (tmp_path / "docs" / "rules" / "old-rule.md").write_text("# old\n")
    (tmp_path / "docs" / "rules" / "dirty-bit-set.md").write_text("# stale\n")
    assert gen.main(["--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "docs/rules/dirty-bit-set.md is stale: run `python -m qcow2lint.gen` in the repository",
        "docs/rules/old-rule.md is stale (no such rule): run `python -m qcow2lint.gen` in the repository",
    ]
    assert gen.main([str(tmp_path)]) == 0
    assert not (tmp_path / "docs" / "rules" / "old-rule.md").exists()
    assert gen.stale(tmp_path, REGISTRY) == []


def test_a_page_renders_the_docstring_severity_options_spec_qemu_and_repair() -> None:
    page = (PAGES / "file-truncated.md").read_text()
    rule = REGISTRY.get("file-truncated")
    assert page.startswith(f"# file-truncated (Q1502)\n\n{rule.summary}\n")
    assert "| default severity | error |" in page and "| structure | Image |" in page
    assert "| `tolerate-partial` | boolean | `false` |" in page
    assert "## What QEMU does\n\nReads of the missing part return zeros" in page
    assert "## Repair\n\nThe file was cut short" in page
    page = (PAGES / "l2-reserved-bits.md").read_text()
    assert '| spec section | "Cluster mapping" |' in page
    sections = doc_sections(REGISTRY.get("dirty-bit-set").doc)
    assert sections["spec"] == ["Header", "Host cluster management"]
    assert sections["repair"].startswith("`qemu-img check -r all`")


def test_every_rule_page_has_qemu_behaviour() -> None:
    for rule in REGISTRY:
        assert doc_sections(rule.doc)["qemu"], f"{rule.name}: no 'QEMU:' paragraph"


REPRODUCED = [rule for rule in REGISTRY if rule.repro]


def test_some_rules_have_a_reproduction() -> None:
    assert len(REPRODUCED) >= 5
    for rule in REPRODUCED:
        assert "## Reproduction" in (PAGES / f"{rule.name}.md").read_text()
        assert "repro.qcow2" in rule.repro and set(re.findall(r"^(\S+)", rule.repro, re.M)) <= {
            "qemu-img",
            "qemu-io",
            "#",
        }


@pytest.mark.parametrize("rule", REPRODUCED, ids=[rule.name for rule in REPRODUCED])
def test_the_reproduction_makes_an_image_the_rule_flags(rule, tmp_path: Path) -> None:  # noqa: ANN001
    if shutil.which("qemu-img") is None or shutil.which("qemu-io") is None:
        pytest.skip("qemu-img / qemu-io not installed")
    # Run as a user would paste them (qemu-io killed by 'sigraise 9' is part of some).
    subprocess.run(["bash", "-c", rule.repro], cwd=tmp_path, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    result = run_cli("check", "-q", "--select", rule.name, "repro.qcow2", cwd=tmp_path)
    assert f" {rule.code} {rule.name} " in result.stdout, result.stdout + result.stderr
    shown = run_cli("rule", rule.name).stdout
    assert "Reproduction:" in shown and f"qcow2lint check --select {rule.name} repro.qcow2" in shown


# --------------------------------------------------------------------------
# SARIF links


def _sarif(*args: str, env: dict[str, str] | None = None) -> dict:
    result = subprocess.run(
        [*cli_argv(), "check", "-f", "sarif", *args, str(REPO_ROOT / "examples" / "demo.qcow2")],
        capture_output=True,
        text=True,
        env=env or dict(os.environ),
    )
    assert result.returncode == 1, result.stderr
    return json.loads(result.stdout)["runs"][0]["tool"]["driver"]


def test_sarif_links_the_rule_pages() -> None:
    env = {k: v for k, v in os.environ.items() if k != "QCOW2LINT_DOCS_URL"}
    driver = _sarif(env=env)  # a source checkout: its own docs/rules, as file:// URIs
    assert driver["informationUri"] == (REPO_ROOT / "docs" / "rules.md").as_uri()
    for descriptor in driver["rules"]:
        page = descriptor["helpUri"]
        assert page == (PAGES / f"{descriptor['name']}.md").as_uri()
        assert (PAGES / f"{descriptor['name']}.md").is_file()
    base = "https://docs.example.org/qcow2lint/docs/rules/"
    driver = _sarif("--docs-url", base, env=env)
    assert driver["informationUri"] == "https://docs.example.org/qcow2lint/docs/rules.md"
    assert driver["rules"][0]["helpUri"] == base + driver["rules"][0]["name"] + ".md"
    driver = _sarif(env={**env, "QCOW2LINT_DOCS_URL": "https://mirror.example.net/rules"})
    assert driver["rules"][0]["helpUri"] == "https://mirror.example.net/rules/" + driver["rules"][0]["name"] + ".md"


def test_without_a_known_base_there_are_no_links() -> None:
    from qcow2lint.report.sarif import sarif_document

    driver = sarif_document([], REGISTRY, docs_url=None)["runs"][0]["tool"]["driver"]
    assert "informationUri" not in driver and not any("helpUri" in rule for rule in driver["rules"])


def test_docs_url_must_be_absolute(tmp_path: Path) -> None:
    result = run_cli("check", "--docs-url", "docs/rules/", REPO_ROOT / "examples" / "demo.qcow2")
    assert result.returncode == 2 and "--docs-url: must be an absolute URL" in result.stderr
    config = tmp_path / "q.yaml"
    config.write_text("docs-url: docs/rules/\n")
    result = run_cli("config", "-c", config)
    assert result.returncode == 2 and "'docs-url' must be an absolute URL" in result.stderr
    config.write_text("docs-url: https://example.org/r/\n")
    assert "docs-url: https://example.org/r/  # " in run_cli("config", "-c", config).stdout


# --------------------------------------------------------------------------
# The configuration's JSON Schema


@pytest.fixture(scope="module")
def validator():  # noqa: ANN201
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra: pip install -e '.[test]'")
    schema = json.loads(SCHEMA_FILE.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_the_schema_is_shipped_printed_and_generated_from_the_registry() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == config_schema(REGISTRY)
    assert run_cli("config", "--schema").stdout == SCHEMA_FILE.read_text()
    from importlib.resources import files

    assert (files("qcow2lint") / "schema" / "qcow2lint.schema.json").read_text() == SCHEMA_FILE.read_text()
    properties = json.loads(SCHEMA_FILE.read_text())["properties"]["rules"]["properties"]
    assert set(properties) == {key for rule in REGISTRY for key in (rule.name, rule.code)} | set(RETIRED)
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert '"qcow2lint.schema" = ["*.json"]' in pyproject


def test_the_reference_configuration_and_the_presets_are_valid(validator) -> None:  # noqa: ANN001
    for path in [REPO_ROOT / "config.yaml", *(REPO_ROOT / "qcow2lint" / "presets").glob("*.yaml")]:
        errors = [e.message for e in validator.iter_errors(yaml.safe_load(path.read_text()))]
        assert errors == [], path
    assert "#   # yaml-language-server: $schema=qcow2lint.schema.json" in (REPO_ROOT / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        ({"rules": {"no-such-rule": "disable"}}, "no-such-rule"),
        ({"rules": {"file-truncated": {"tolerate-partial": 1}}}, "1 is not of type 'boolean'"),
        ({"rules": {"Q0190": {"max-virtual-size": "big"}}}, "'big' is not of type 'integer'"),
        ({"rules": {"l2-reserved-bits": {"level": "fatal"}}}, "'fatal'"),
        ({"rules": {"l2-reserved-bits": "off"}}, "'off'"),
        ({"per-file-ignores": {"*.qcow2": ["nope"]}}, "nope"),
        ({"max-findings-per-rule": -1}, "-1"),
        ({"exclude": [""]}, "''"),
        ({"docs-url": "docs/rules/"}, "docs/rules/"),
        ({"unknown-key": 1}, "unknown-key"),
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(validator, document: dict, needle: str, tmp_path: Path) -> None:  # noqa: ANN001
    def messages(errors):  # noqa: ANN001, ANN202 -- with the reasons inside anyOf
        for error in errors:
            yield error.message
            yield from messages(error.context or ())

    found = list(messages(validator.iter_errors(document)))
    assert found and any(needle in message for message in found), found
    config = tmp_path / "q.yaml"
    config.write_text(yaml.safe_dump(document))
    assert run_cli("config", "-c", config).returncode == 2


def test_the_schema_accepts_names_codes_and_options(validator) -> None:  # noqa: ANN001
    document = {
        "extends": "strict",
        "exclude": ["fixtures/**"],
        "docs-url": "https://example.org/rules/",
        "rules": {
            "Q0701": {"level": "warning"},
            "file-truncated": {"tolerate-partial": False, "enabled": True},
            "dirty-bit-set": "disable",
        },
        "per-file-ignores": {"a/*.qcow2": ["Q0701", "dirty-bit-set"], "b.qcow2": "Q0110"},
    }
    assert [e.message for e in validator.iter_errors(document)] == []
