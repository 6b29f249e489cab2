"""Configuration: the reference config.yaml, presets, discovery, overrides
and one-line errors that name the file, the rule and the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from harness import REPO_ROOT, run_cli

from qcow2lint.config import ConfigError, discover, load_config
from qcow2lint.configrender import reference_config
from qcow2lint.findings import Severity
from qcow2lint.registry import load_registry


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def test_config_yaml_lists_every_rule_and_matches_the_registry(registry) -> None:
    """config.yaml is the reference: regenerate it with
    `python -m qcow2lint.gen`."""
    assert (REPO_ROOT / "config.yaml").read_text() == reference_config(registry)


def test_the_reference_config_is_the_default_config(registry) -> None:
    loaded = load_config(registry, REPO_ROOT / "config.yaml")
    defaults = load_config(registry, start=Path("/"))
    assert dict(loaded.rules) == dict(defaults.rules)
    assert loaded.max_findings_per_rule == defaults.max_findings_per_rule == 100


def test_levels_options_and_selection_by_code(registry, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "rules:\n  l1-reserved-bits: {level: warning}\n  Q0110: disable\n  file-truncated: {tolerate-partial: false}\n"
    )
    config = load_config(registry, path)
    assert config.rules["l1-reserved-bits"].severity is Severity.WARNING
    assert not config.rules["header-padding-nonzero"].enabled
    assert config.rules["file-truncated"].options["tolerate-partial"] is False
    assert config.source == str(path)


def test_strict_raises_warnings_to_errors(registry, tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("extends: strict\n")
    config = load_config(registry, path)
    assert config.rules["header-padding-nonzero"].severity is Severity.ERROR
    assert config.rules["compat-unknown-bits"].severity is Severity.INFO


def test_extends_a_file_relative_to_the_config(registry, tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("rules: {l2-reserved-bits: disable}\nmax-findings-per-rule: 3\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nrules: {l1-reserved-bits: {level: info}}\n")
    config = load_config(registry, tmp_path / "child.yaml")
    assert not config.rules["l2-reserved-bits"].enabled
    assert config.rules["l1-reserved-bits"].severity is Severity.INFO
    assert config.max_findings_per_rule == 3


def test_discovery_walks_up_from_the_working_directory(registry, tmp_path: Path) -> None:
    (tmp_path / ".qcow2lint.yaml").write_text("rules: {l1-reserved-bits: disable}\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert discover(nested) == tmp_path / ".qcow2lint.yaml"
    assert not load_config(registry, start=nested).rules["l1-reserved-bits"].enabled


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("rules: {l1-reserved-bit: disable}\n", ["unknown rule 'l1-reserved-bit'", "did you mean 'l1-reserved-bits'"]),
        (
            "rules: {file-truncated: {tolerate-partal: true}}\n",
            ["'file-truncated'", "unknown option 'tolerate-partal'", "tolerate-partial"],
        ),
        ("rules: {file-truncated: {tolerate-partial: 3}}\n", ["'file-truncated'", "must be bool, got int 3"]),
        ("rules: {l1-reserved-bits: {level: fatal}}\n", ["'l1-reserved-bits'", "unknown level 'fatal'"]),
        ("rules: {l1-reserved-bits: maybe}\n", ["'l1-reserved-bits'", "expected enable, disable"]),
        ("extends: nowhere\n", ["'extends: nowhere' is neither a preset"]),
        ("max-findings-per-rule: -1\n", ["max-findings-per-rule"]),
        ("rulez: {}\n", ["unknown key 'rulez'", "did you mean 'rules'"]),
        ("rules: [\n", ["invalid YAML at line"]),
        ("- a list\n", ["must be a mapping"]),
        (
            "per-file-ignores: {'*.qcow2': [l2-reserved-bitz]}\n",
            ["per-file-ignores '*.qcow2'", "unknown rule 'l2-reserved-bitz'", "did you mean 'l2-reserved-bits'"],
        ),
        ("per-file-ignores: {'*.qcow2': [Q9999]}\n", ["unknown rule 'Q9999'"]),
        ("per-file-ignores: {'*.qcow2': 3}\n", ["expected a list of rule names or codes"]),
        ("per-file-ignores: [a, b]\n", ["'per-file-ignores' must be a mapping"]),
        ("per-file-ignore: {}\n", ["unknown key 'per-file-ignore'", "did you mean 'per-file-ignores'"]),
    ],
)
def test_bad_configs_fail_with_one_line_naming_file_rule_and_problem(
    registry, tmp_path: Path, text: str, needles: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(registry, path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(str(path))
    for needle in needles:
        assert needle in message


def test_an_extends_loop_is_an_error(registry, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops"):
        load_config(registry, tmp_path / "a.yaml")


def test_reference_config_command_prints_config_yaml() -> None:
    result = run_cli("rules", "--reference-config")
    assert result.returncode == 0
    assert result.stdout == (REPO_ROOT / "config.yaml").read_text()


def test_the_reference_config_names_no_schema_path_that_resolves_only_here(tmp_path: Path) -> None:
    """A ``$schema`` modeline in the printed reference would point where a
    user's copy has no schema; it says how to write one beside the file,
    and the modeline it shows resolves there."""
    text = run_cli("rules", "--reference-config").stdout
    modelines = [line for line in text.splitlines() if re.match(r"#\s*yaml-language-server\s*:", line)]
    assert modelines == []
    hint = re.search(r"\((qcow2lint config --schema) > (\S+)\).*\n#   # yaml-language-server: \$schema=(\S+)\n", text)
    assert hint is not None, text
    command, saved, schema = hint.groups()
    assert saved == schema
    written = run_cli(*command.split()[1:])
    assert written.returncode == 0
    (tmp_path / saved).write_text(written.stdout)
    assert json.loads((tmp_path / schema).read_text())["properties"]["rules"]


def test_rule_command_prints_documentation_and_suggests() -> None:
    result = run_cli("rule", "l1-reserved-bits")
    assert result.returncode == 0 and "0x7f000000000001ff" in result.stdout and "QEMU" in result.stdout
    assert run_cli("rule", "Q0601").stdout == result.stdout
    wrong = run_cli("rule", "l1-reserved-bit")
    assert wrong.returncode == 2 and "did you mean 'l1-reserved-bits'" in wrong.stderr
