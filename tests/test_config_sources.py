"""Where the configuration comes from: ``[tool.qcow2lint]`` in pyproject.toml
(discovery, precedence against the YAML files, errors naming the file),
``per-file-ignores``, and ``qcow2lint config`` showing each value's source."""

from __future__ import annotations

import shutil
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import assert_one_line_error, run_cli

from qcow2lint.config import (
    BUILTIN,
    ConfigError,
    FileIgnore,
    apply_ignores,
    discover,
    load_config,
)
from qcow2lint.configrender import render_config
from qcow2lint.engine import lint_path
from qcow2lint.findings import Severity
from qcow2lint.registry import load_registry

PYPROJECT = """\
[project]
name = "disks"

[tool.qcow2lint]
max-findings-per-rule = 7

[tool.qcow2lint.rules]
header-padding-nonzero = "disable"
l1-reserved-bits = {level = "warning"}
"""


@pytest.fixture(scope="module")
def registry():
    return load_registry()


# --------------------------------------------------------------------------
# pyproject.toml
# --------------------------------------------------------------------------


def test_pyproject_is_found_upwards_and_read(registry, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert discover(nested) == tmp_path / "pyproject.toml"
    config = load_config(registry, start=nested)
    assert config.source == str(tmp_path / "pyproject.toml")
    assert config.max_findings_per_rule == 7
    assert not config.rules["header-padding-nonzero"].enabled
    assert config.rules["l1-reserved-bits"].severity is Severity.WARNING


def test_pyproject_without_the_table_is_skipped(registry, tmp_path: Path) -> None:
    (tmp_path / ".qcow2lint.yaml").write_text("max-findings-per-rule: 3\n")
    inner = tmp_path / "pkg"
    inner.mkdir()
    (inner / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.black]\nline-length = 100\n')
    assert discover(inner) == tmp_path / ".qcow2lint.yaml"
    assert load_config(registry, start=inner).max_findings_per_rule == 3


@pytest.mark.parametrize(
    ("present", "winner"),
    [
        ((".qcow2lint.yaml", "qcow2lint.yaml", "pyproject.toml"), ".qcow2lint.yaml"),
        (("qcow2lint.yaml", "pyproject.toml"), "qcow2lint.yaml"),
        ((".qcow2lint.yaml", "pyproject.toml"), ".qcow2lint.yaml"),
        (("pyproject.toml",), "pyproject.toml"),
        ((".qcow2lint.yml", "qcow2lint.yaml", "pyproject.toml"), ".qcow2lint.yml"),
        ((".qcow2lint.yml", "qcow2lint.yml"), ".qcow2lint.yml"),
        (("qcow2lint.yml", "pyproject.toml"), "qcow2lint.yml"),
        ((".qcow2lint.yaml", "qcow2lint.yml"), ".qcow2lint.yaml"),
    ],
)
def test_precedence_in_one_directory(registry, tmp_path: Path, present: tuple[str, ...], winner: str) -> None:
    for number, name in enumerate(present, start=1):
        if name == "pyproject.toml":
            (tmp_path / name).write_text(f"[tool.qcow2lint]\nmax-findings-per-rule = {number}\n")
        else:
            (tmp_path / name).write_text(f"max-findings-per-rule: {number}\n")
    assert discover(tmp_path) == tmp_path / winner
    assert load_config(registry, start=tmp_path).max_findings_per_rule == present.index(winner) + 1


def test_the_yml_spelling_is_found_upwards(registry, tmp_path: Path) -> None:
    (tmp_path / ".qcow2lint.yml").write_text("max-findings-per-rule: 4\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert discover(nested) == tmp_path / ".qcow2lint.yml"
    config = load_config(registry, start=nested)
    assert config.max_findings_per_rule == 4 and config.source == str(tmp_path / ".qcow2lint.yml")


@pytest.mark.parametrize("name", [".qcow2lint", "qcow2lint"])
def test_both_spellings_in_one_directory_are_an_error_naming_both(registry, tmp_path: Path, name: str) -> None:
    """Which of the two a user edits cannot be guessed: one line, exit 2."""
    (tmp_path / f"{name}.yaml").write_text("max-findings-per-rule: 1\n")
    (tmp_path / f"{name}.yml").write_text("max-findings-per-rule: 2\n")
    message = (
        f"{tmp_path / name}.yaml and {tmp_path / name}.yml both exist: two spellings of one configuration file; "
        "keep one"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(registry, start=tmp_path)
    assert caught.value.lines == (message,)
    result = run_cli("config", cwd=tmp_path)
    assert_one_line_error(result)
    assert result.stderr == f"qcow2lint: error: {message}\n"
    # a file given with --config, or a nearer one, is not in doubt
    assert load_config(registry, tmp_path / f"{name}.yml").max_findings_per_rule == 2
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / ".qcow2lint.yml").write_text("max-findings-per-rule: 3\n")
    assert load_config(registry, start=tmp_path / "inner").max_findings_per_rule == 3


def test_a_nearer_pyproject_beats_a_yaml_further_up(registry, tmp_path: Path) -> None:
    (tmp_path / ".qcow2lint.yaml").write_text("max-findings-per-rule: 1\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[tool.qcow2lint]\nmax-findings-per-rule = 2\n")
    assert load_config(registry, start=inner).max_findings_per_rule == 2


def test_pyproject_extends_a_preset_and_a_file_relative_to_itself(registry, tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("rules: {l2-reserved-bits: disable}\n")
    (tmp_path / "pyproject.toml").write_text('[tool.qcow2lint]\nextends = "base.yaml"\n')
    assert not load_config(registry, start=tmp_path).rules["l2-reserved-bits"].enabled
    (tmp_path / "pyproject.toml").write_text('[tool.qcow2lint]\nextends = "strict"\n')
    assert load_config(registry, start=tmp_path).rules["header-padding-nonzero"].severity is Severity.ERROR


def test_pyproject_given_with_config(registry, tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    assert load_config(registry, path).max_findings_per_rule == 7
    path.write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"pyproject\.toml: no \[tool\.qcow2lint\] table"):
        load_config(registry, path)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            '[tool.qcow2lint.rules]\nl1-reserved-bit = "disable"\n',
            ["unknown rule 'l1-reserved-bit'", "did you mean 'l1-reserved-bits'"],
        ),
        ("[tool.qcow2lint]\nrulez = {}\n", ["unknown key 'rulez'", "did you mean 'rules'"]),
        ("[tool.qcow2lint]\nmax-findings-per-rule = -1\n", ["max-findings-per-rule"]),
        (
            '[tool.qcow2lint.rules]\nl1-reserved-bits = {level = "fatal"}\n',
            ["'l1-reserved-bits'", "unknown level 'fatal'"],
        ),
        (
            '[tool.qcow2lint.per-file-ignores]\n"*.qcow2" = ["l2-reserved-bitz"]\n',
            ["unknown rule 'l2-reserved-bitz'", "did you mean 'l2-reserved-bits'"],
        ),
        ("[tool]\nqcow2lint = 3\n", ["[tool.qcow2lint] must be a table"]),
        ("[tool.qcow2lint\n", ["invalid TOML", "line 1"]),
    ],
)
def test_pyproject_errors_name_the_pyproject_file(registry, tmp_path: Path, text: str, needles: list[str]) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    for how in ({"path": path}, {"start": tmp_path}):
        with pytest.raises(ConfigError) as error:
            load_config(registry, **how)
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"{path}")
        for needle in needles:
            assert needle in message


def test_pyproject_error_through_the_cli_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.qcow2lint.rules]\nl1-reserved-bit = "disable"\n')
    result = run_cli("config", cwd=tmp_path)
    assert_one_line_error(result)
    assert f"{tmp_path / 'pyproject.toml'} [tool.qcow2lint]: unknown rule 'l1-reserved-bit'" in result.stderr


# --------------------------------------------------------------------------
# per-file-ignores
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "base", "expected"),
    [
        ("*.qcow2", "a.qcow2", None, True),
        ("*.qcow2", "deep/dir/a.qcow2", None, True),  # no '/': the file name
        ("*.qcow2", "a.img", None, False),
        ("fixtures/*.qcow2", "fixtures/a.qcow2", None, True),
        ("fixtures/*.qcow2", "./fixtures/a.qcow2", None, True),
        ("fixtures/*.qcow2", "fixtures/sub/a.qcow2", None, False),  # '*' stays in one directory
        ("fixtures/**/*.qcow2", "fixtures/sub/x/a.qcow2", None, True),
        ("fixtures/**/*.qcow2", "fixtures/a.qcow2", None, True),
        ("**/broken-?.qcow2", "x/y/broken-1.qcow2", None, True),
        ("broken-[0-9].qcow2", "broken-7.qcow2", None, True),
        ("broken-[!0-9].qcow2", "broken-7.qcow2", None, False),
        ("fixtures/*.qcow2", "/proj/fixtures/a.qcow2", "/proj", True),  # relative to the config's directory
        ("fixtures/*.qcow2", "/other/fixtures/a.qcow2", "/proj", False),
        ("/abs/*.qcow2", "/abs/a.qcow2", None, True),  # the path as given
    ],
)
def test_glob_matching(pattern: str, path: str, base: str | None, expected: bool) -> None:
    assert FileIgnore(pattern, ("l2-reserved-bits",), base).matches(path) is expected


def test_relative_patterns_match_from_another_working_directory(
    registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".qcow2lint.yaml").write_text("per-file-ignores:\n  'fixtures/*.qcow2': [Q0701]\n")
    (tmp_path / "fixtures").mkdir()
    monkeypatch.chdir(tmp_path / "fixtures")
    config = load_config(registry)
    assert config.per_file_ignores == (FileIgnore("fixtures/*.qcow2", ("l2-reserved-bits",), str(tmp_path)),)
    assert config.ignored_rules("a.qcow2") == {"l2-reserved-bits"}  # = <config dir>/fixtures/a.qcow2
    assert config.ignored_rules("../elsewhere/a.qcow2") == set()


def test_per_file_ignores_on_a_real_image(registry, tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    image = fixtures / "broken.qcow2"
    ib.create(image, 16 << 20)
    ib.Qcow2Image(image).set_header_padding(0, 1)
    shutil.copyfile(image, tmp_path / "other.qcow2")
    (tmp_path / "qcow2lint.yaml").write_text(
        "per-file-ignores:\n  'fixtures/*.qcow2': [header-padding-nonzero]\n  'nothing/*': [Q0110]\n"
    )
    config = load_config(registry, start=tmp_path)
    report = lint_path(image, config, registry)
    padding = [f for f in report.findings if f.rule == "header-padding-nonzero"]
    assert len(padding) == 1 and padding[0].rule in config.ignored_rules(report.path)
    assert not any(
        f.rule in config.ignored_rules(report.path) for f in report.findings if f.rule != "header-padding-nonzero"
    )
    kept = apply_ignores(config, report).findings
    assert kept == tuple(f for f in report.findings if f.rule != "header-padding-nonzero")
    other = lint_path(tmp_path / "other.qcow2", config, registry)
    assert apply_ignores(config, other) is other
    assert [f.rule for f in other.findings if f.rule == "header-padding-nonzero"] == ["header-padding-nonzero"]


def test_extends_merges_per_file_ignores(registry, tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("per-file-ignores: {'a/*': [Q0110], 'b/*': [Q0701]}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nper-file-ignores: {'a/*': [Q0601, l2-reserved-bits]}\n")
    config = load_config(registry, tmp_path / "child.yaml")
    assert {e.pattern: e.rules for e in config.per_file_ignores} == {
        "b/*": ("l2-reserved-bits",),
        "a/*": ("l1-reserved-bits", "l2-reserved-bits"),
    }
    assert config.sources["per-file-ignores.b/*"] == str(tmp_path / "base.yaml")
    assert config.sources["per-file-ignores.a/*"] == str(tmp_path / "child.yaml")


# --------------------------------------------------------------------------
# Provenance and `qcow2lint config`
# --------------------------------------------------------------------------


def test_sources_record_default_preset_and_file(registry, tmp_path: Path) -> None:
    (tmp_path / ".qcow2lint.yaml").write_text("extends: strict\nrules: {l2-reserved-bits: disable}\n")
    config = load_config(registry, start=tmp_path)
    file = str(tmp_path / ".qcow2lint.yaml")
    assert config.chain == ("preset default", "preset strict", file)
    assert config.found_by == "discovered"
    assert config.sources["max-findings-per-rule"] == "preset default"
    assert config.sources["warnings-are-errors"] == "preset strict"
    assert config.sources["rules.l2-reserved-bits"] == file
    assert config.sources["rules.l1-reserved-bits"] == BUILTIN
    assert config.sources["rules.header-padding-nonzero"].startswith(BUILTIN + "; level raised to error")


def test_config_command_shows_values_and_sources(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.qcow2lint]\nextends = "strict"\n'
        '[tool.qcow2lint.rules]\nl2-reserved-bits = {level = "info"}\n'
        '[tool.qcow2lint.per-file-ignores]\n"fixtures/*.qcow2" = ["Q0110"]\n'
    )
    nested = tmp_path / "sub"
    nested.mkdir()
    result = run_cli("config", cwd=nested)
    assert result.returncode == 0, result.stderr
    label = f"{tmp_path / 'pyproject.toml'} [tool.qcow2lint]"
    lines = result.stdout.splitlines()
    assert f"# configuration: {tmp_path / 'pyproject.toml'} (found from the working directory upwards)" in lines
    assert f"# applied in order: preset default -> preset strict -> {label}" in lines
    assert "max-findings-per-rule: 100  # preset default" in lines
    assert "warnings-are-errors: true  # preset strict" in lines
    assert f"  l2-reserved-bits: {{enabled: true, level: info}}  # Q0701; {label}" in lines
    assert "  l1-reserved-bits: {enabled: true, level: error}  # Q0601; built-in default" in lines
    assert any(
        line.startswith(
            "  header-padding-nonzero: {enabled: true, level: error}  # Q0110; built-in default; "
            "level raised to error by warnings-are-errors (preset strict)"
        )
        for line in lines
    )
    assert f"  fixtures/*.qcow2: [header-padding-nonzero]  # {label}, relative to {tmp_path}" in lines


def test_config_command_without_a_file_and_with_config(tmp_path: Path) -> None:
    result = run_cli("config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "# no configuration file found; built-in defaults" in result.stdout
    assert "per-file-ignores: {}  # built-in default" in result.stdout
    given = tmp_path / "c.yaml"
    given.write_text("max-findings-per-rule: 5\n")
    result = run_cli("config", "--config", given, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"# configuration: {given} (given with --config)" in result.stdout
    assert f"max-findings-per-rule: 5  # {given}" in result.stdout
    assert_one_line_error(run_cli("config", "--config", tmp_path / "missing.yaml", cwd=tmp_path))


def test_the_printed_configuration_is_itself_equivalent(registry, tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "extends: strict\nmax-findings-per-rule: 9\n"
        "rules: {Q0110: disable, file-truncated: {tolerate-partial: false}, l1-reserved-bits: {level: info}}\n"
        "per-file-ignores: {'x/*.qcow2': [Q0701]}\n"
    )
    config = load_config(registry, tmp_path / "c.yaml")
    (tmp_path / "printed.yaml").write_text(render_config(config, registry))
    again = load_config(registry, tmp_path / "printed.yaml")
    assert dict(again.rules) == dict(config.rules)
    assert again.max_findings_per_rule == 9 and again.warnings_are_errors
    assert again.per_file_ignores == config.per_file_ignores
