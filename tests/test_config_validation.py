"""Configuration errors at load time (issue 8, item 5): every option value
is checked against its rule's declared type, choices and range when the
configuration is read; duplicate keys and a rule named twice are errors;
every problem is one line naming the file, the rule and the option, and all
of them are reported in one run (exit 2).  Also the off-by-default rules
and the ``pedantic`` preset (item 1)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from harness import REPO_ROOT, assert_no_traceback, assert_one_line_error, run_cli

from qcow2lint.config import ConfigError, load_config
from qcow2lint.configrender import reference_config
from qcow2lint.findings import Severity
from qcow2lint.registry import RegistryError, from_source, load_registry, option_schema


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def _errors(registry, path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        load_config(registry, path)
    return caught.value.lines


def _config(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- option values ------------------------------------------------------------


def _bad_values(rule, option: str) -> list[object]:
    """Values of ``option`` that must be refused: another type, a string
    outside the choices, a number outside the range."""
    schema = option_schema(rule)[option]
    bad: list[object] = [[1, 2]]  # a list fits no option
    bad.append("text" if schema["type"] != "string" else 1)
    if "enum" in schema:
        bad.append("spek")
    if "minimum" in schema:
        bad.append(schema["minimum"] - 1)
    if "maximum" in schema:
        bad.append(schema["maximum"] + 1)
    return bad


def _options(registry):
    return [(rule.name, option) for rule in registry for option in rule.options]


@pytest.mark.parametrize(("rule_name", "option"), _options(load_registry()))
def test_every_bad_option_value_is_refused_naming_file_rule_and_option(
    registry, tmp_path: Path, rule_name: str, option: str
) -> None:
    rule = registry.get(rule_name)
    for value in _bad_values(rule, option):
        path = _config(tmp_path, f"rules:\n  {rule_name}: {{{option}: {value!r}}}\n".replace("'", '"'))
        [line] = _errors(registry, path)
        assert line.startswith(f"{path}: rule {rule_name!r}: option {option!r} "), line


@pytest.mark.parametrize(("rule_name", "option"), _options(load_registry()))
def test_every_allowed_option_value_is_accepted(registry, tmp_path: Path, rule_name: str, option: str) -> None:
    rule = registry.get(rule_name)
    schema = option_schema(rule)[option]
    for value in schema.get("enum", [schema["default"]]):
        path = _config(tmp_path, f"rules:\n  {rule_name}: {{{option}: {value!r}}}\n".replace("'", '"'))
        assert load_config(registry, path).rules[rule_name].options[option] == value


def test_every_string_option_has_choices_and_every_integer_option_a_minimum(registry) -> None:
    """So that every option is validated beyond its type: enumerations and
    ranges are declared, not found out by a rule at check time."""
    for rule in registry:
        for option, schema in option_schema(rule).items():
            if schema["type"] == "string":
                assert "enum" in schema, (rule.name, option)
            if schema["type"] in ("integer", "number"):
                assert "minimum" in schema, (rule.name, option)


def test_rules_that_pick_a_choice_declare_those_choices(registry) -> None:
    """A rule reading an option with rulekit.option_choice takes the choices
    from its own OPTION_CONSTRAINTS, so the configuration refuses what the
    rule would refuse."""
    for path in sorted((REPO_ROOT / "rules").glob("*.py")):
        source = path.read_text()
        for option in re.findall(r'option_choice\(ctx, "([^"]+)", ([^)]+\))', source):
            name, choices = option
            rule = registry.get(path.stem.replace("_", "-"))
            assert "choices" in rule.option_constraints.get(name, {}), (path.name, name)
            assert choices.startswith(f'OPTION_CONSTRAINTS["{name}"]["choices"]'), (path.name, choices)


def test_option_schema_shape(registry) -> None:
    assert option_schema(registry.get("bitmap-extra-data")) == {
        "reading": {"type": "string", "default": "qemu", "enum": ["qemu", "spec"]}
    }
    assert option_schema(registry.get("virtual-size-too-large")) == {
        "max-virtual-size": {"type": "integer", "default": 2199023255552, "minimum": 1}
    }
    assert option_schema(registry.get("file-truncated")) == {"tolerate-partial": {"type": "boolean", "default": False}}


def test_the_reported_example_fails_at_load_not_at_check(tmp_path: Path) -> None:
    """`bitmap-extra-data: {reading: spek}` used to pass `qcow2lint config`
    and become a Q0000 internal-error on images with bitmaps."""
    path = _config(tmp_path, "rules:\n  bitmap-extra-data: {reading: spek}\n")
    for command in (["config", "--config", str(path)], ["check", "--config", str(path), str(path)]):
        result = run_cli(*command)
        assert_one_line_error(result)
        assert result.stderr.strip() == (
            f"qcow2lint: error: {path}: rule 'bitmap-extra-data': option 'reading' must be one of "
            "'qemu', 'spec', got 'spek'"
        )


def test_a_bad_value_keeps_nothing_of_its_rule_mapping(registry, tmp_path: Path) -> None:
    path = _config(tmp_path, "rules:\n  bitmap-extra-data: {reading: spec, level: loud}\n")
    assert _errors(registry, path) == (
        f"{path}: rule 'bitmap-extra-data': unknown level 'loud' (use error, warning or info)",
    )


# --- every problem, one line each, in one run --------------------------------------


ALL_WRONG = """\
extends: default
max-findings-per-rule: -1
warnings-are-errors: maybe
colour: red
rules:
  bitmap-extra-data: {reading: spek}
  virtual-size-too-large: {max-virtual-size: -5}
  luks-iterations-too-high: {max-iterations: 0, level: error}
  file-truncated: {tolerate-partial: 1}
  bitmap-table-size-wrong: {in-use: sometimes, enabled: 3}
  l1-reserved-bits: {levle: error}
  no-such-rule: enable
  Q1501: enable
  file-trailing-partial-cluster: disable
per-file-ignores:
  "*.qcow2": [no-such-rule]
"""


def test_all_problems_are_reported_in_one_run(registry, tmp_path: Path) -> None:
    path = _config(tmp_path, ALL_WRONG)
    lines = _errors(registry, path)
    expected_fragments = [
        "'max-findings-per-rule' must be a whole number >= 0, got -1",
        "'warnings-are-errors' must be true or false, got 'maybe'",
        "unknown key 'colour'",
        "rule 'bitmap-extra-data': option 'reading' must be one of 'qemu', 'spec', got 'spek'",
        "rule 'virtual-size-too-large': option 'max-virtual-size' must be >= 1, got -5",
        "rule 'luks-iterations-too-high': option 'max-iterations' must be >= 1, got 0",
        "rule 'file-truncated': option 'tolerate-partial' must be bool, got int 1",
        "rule 'bitmap-table-size-wrong': option 'in-use' must be one of 'skip', 'report', got 'sometimes'",
        "rule 'bitmap-table-size-wrong': 'enabled' must be true or false, got 3",
        "rule 'l1-reserved-bits': unknown option 'levle' (did you mean 'level'?)",
        "c.yaml: unknown rule 'no-such-rule'",
        (
            "rule 'file-trailing-partial-cluster' is given twice in 'rules' (as 'Q1501' and "
            "'file-trailing-partial-cluster')"
        ),
        "per-file-ignores '*.qcow2': unknown rule 'no-such-rule'",
    ]
    assert len(lines) == len(expected_fragments) == 13, "\n".join(lines)
    assert all(line.startswith(f"{path}: ") and "\n" not in line for line in lines)
    for fragment in expected_fragments:
        assert sum(fragment in line for line in lines) == 1, (fragment, lines)


def test_the_cli_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    path = _config(tmp_path, ALL_WRONG)
    for command in ("config", "check"):
        args = [command, "--config", str(path)] + ([str(path)] if command == "check" else [])
        result = run_cli(*args)
        assert_no_traceback(result)
        assert result.returncode == 2 and result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 13, result.stderr
        assert all(line.startswith(f"qcow2lint: error: {path}: ") for line in lines), result.stderr


#: Several wrong values of every kind of key, and keys given twice with a
#: wrong value each time: the first value of a repeated key is checked too.
EVERY_KIND_WRONG = """\
extends: [default]
max-findings-per-rule: -1
max-findings-per-rule: many
warnings-are-errors: maybe
colour: red
exclude: 5
docs-url: docs/rules/
docs-url: 7
rules:
  l1-reserved-bits: {level: loud}
  l1-reserved-bits: {levle: info}
  bitmap-extra-data: {reading: spek, reading: spex}
  no-such-rule: enable
  Q1501: enable
  file-trailing-partial-cluster: disable
  file-truncated: maybe
per-file-ignores:
  "*.qcow2": [no-such-rule]
  "*.qcow2": [l2-reserved-bitz]
  "": [l1-reserved-bits]
exclude: ["", 3, "ok/**"]
"""


def test_every_problem_of_every_kind_of_key_is_reported_in_one_run(registry, tmp_path: Path) -> None:
    """A wrong ``exclude`` or ``docs-url`` does not stop the load, and a key
    given twice reports the problems of both of its values."""
    path = _config(tmp_path, EVERY_KIND_WRONG)
    problems = [
        "line 3: duplicate key 'max-findings-per-rule' (first given at line 2)",
        "line 8: duplicate key 'docs-url' (first given at line 7)",
        "line 11: duplicate key 'l1-reserved-bits' (first given at line 10)",
        "line 12: duplicate key 'reading' (first given at line 12)",
        "line 19: duplicate key '*.qcow2' (first given at line 18)",
        "line 21: duplicate key 'exclude' (first given at line 6)",
        "unknown key 'colour'",
        "'extends' must be a preset name or a file path, got ['default']",
        "'max-findings-per-rule' must be a whole number >= 0, got -1",
        "'max-findings-per-rule' must be a whole number >= 0, got 'many'",
        "'warnings-are-errors' must be true or false, got 'maybe'",
        "rule 'l1-reserved-bits': unknown level 'loud' (use error, warning or info)",
        "rule 'l1-reserved-bits': unknown option 'levle' (did you mean 'level'?)",
        "rule 'bitmap-extra-data': option 'reading' must be one of 'qemu', 'spec', got 'spek'",
        "rule 'bitmap-extra-data': option 'reading' must be one of 'qemu', 'spec', got 'spex'",
        "unknown rule 'no-such-rule'",
        (
            "rule 'file-trailing-partial-cluster' is given twice in 'rules' (as 'Q1501' and "
            "'file-trailing-partial-cluster'); give it once"
        ),
        "rule 'file-truncated': expected enable, disable or a mapping, got 'maybe'",
        "per-file-ignores '*.qcow2': unknown rule 'no-such-rule'",
        "per-file-ignores '*.qcow2': unknown rule 'l2-reserved-bitz' (did you mean 'l2-reserved-bits'?)",
        "per-file-ignores: a pattern must be a non-empty string, got ''",
        "'exclude' must be a list of glob patterns, got 5",
        "exclude: a pattern must be a non-empty string, got ''",
        "exclude: a pattern must be a non-empty string, got 3",
        "'docs-url' must be an absolute URL (https://..., file:///...), got 'docs/rules/'",
        "'docs-url' must be an absolute URL (https://..., file:///...), got 7",
    ]
    assert _errors(registry, path) == tuple(f"{path}: {problem}" for problem in problems)
    result = run_cli("config", "--config", str(path))
    assert_no_traceback(result)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [f"qcow2lint: error: {path}: {problem}" for problem in problems]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max-findings-per-rule: -1\nmax-findings-per-rule: 5\n", "got -1"),
        ("rules:\n  l1-reserved-bits: {level: loud}\n  l1-reserved-bits: disable\n", "unknown level 'loud'"),
        ("rules:\n  l1-reserved-bits: {level: loud, level: info}\n", "unknown level 'loud'"),
        ("per-file-ignores:\n  a.qcow2: [Q9999]\n  a.qcow2: [Q0110]\n", "unknown rule 'Q9999'"),
        ("exclude: 5\nexclude: []\n", "got 5"),
    ],
)
def test_a_repeated_key_does_not_hide_the_problem_of_the_value_it_shadows(
    registry, tmp_path: Path, text: str, problem: str
) -> None:
    path = _config(tmp_path, text)
    duplicate, shadowed = _errors(registry, path)
    assert "duplicate key" in duplicate and problem in shadowed, (duplicate, shadowed)


def test_problems_of_every_file_in_an_extends_chain_are_reported(registry, tmp_path: Path) -> None:
    base = _config(tmp_path, "rules:\n  bitmap-extra-data: {reading: spek}\n", "base.yaml")
    child = _config(tmp_path, "extends: base.yaml\nrules:\n  virtual-size-too-large: {max-virtual-size: -1}\n")
    lines = _errors(registry, child)
    assert [line.split(": ")[0] for line in lines] == [str(base), str(child)], lines


def test_a_missing_base_does_not_hide_the_files_own_problems(registry, tmp_path: Path) -> None:
    path = _config(tmp_path, "extends: nowhere.yaml\nrules:\n  bitmap-extra-data: {reading: spek}\n")
    lines = _errors(registry, path)
    assert len(lines) == 2 and "neither a preset" in lines[0] and "'spek'" in lines[1], lines


def test_pyproject_tables_are_validated_the_same_way(registry, tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "[tool.qcow2lint]\nmax-findings-per-rule = 3\n[tool.qcow2lint.rules]\n"
        'bitmap-extra-data = {reading = "spek"}\nQ1418 = {reading = "spec"}\nbitmap-granularity-range = "enable"\n',
        "pyproject.toml",
    )
    lines = _errors(registry, path)
    assert lines == (
        (
            f"{path} [tool.qcow2lint]: rule 'bitmap-extra-data': option 'reading' must be one of 'qemu', 'spec', "
            "got 'spek'"
        ),
        (
            f"{path} [tool.qcow2lint]: rule 'bitmap-granularity-range' is given twice in 'rules' (as 'Q1418' and "
            "'bitmap-granularity-range'); give it once"
        ),
    )


# --- duplicate keys and a rule named twice ----------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "first"),
    [
        ("max-findings-per-rule: 5\nmax-findings-per-rule: 6\n", 2, "max-findings-per-rule", 1),
        ("rules:\n  l1-reserved-bits: disable\n  l1-reserved-bits: enable\n", 3, "l1-reserved-bits", 2),
        ("rules:\n  l1-reserved-bits: {level: info, level: error}\n", 2, "level", 2),
        ("per-file-ignores:\n  a.qcow2: [Q0110]\n  a.qcow2: [Q0111]\n", 3, "a.qcow2", 2),
    ],
)
def test_duplicate_keys_are_errors(registry, tmp_path: Path, text: str, line: int, key: str, first: int) -> None:
    path = _config(tmp_path, text)
    assert _errors(registry, path) == (f"{path}: line {line}: duplicate key {key!r} (first given at line {first})",)
    result = run_cli("config", "--config", str(path))
    assert_one_line_error(result)


def test_merge_keys_may_be_overridden(registry, tmp_path: Path) -> None:
    """YAML's `<<` merge puts keys in that the mapping may override: no duplicate."""
    path = _config(
        tmp_path,
        "rules:\n  l1-reserved-bits: &base {level: info, enabled: true}\n"
        "  l2-reserved-bits: {<<: *base, level: warning}\n",
    )
    config = load_config(registry, path)
    assert config.rules["l2-reserved-bits"].severity is Severity.WARNING


def test_a_rule_named_by_code_and_by_name_in_one_file_is_an_error(registry, tmp_path: Path) -> None:
    path = _config(tmp_path, "rules:\n  l1-reserved-bits: disable\n  Q0601: {level: info}\n")
    assert _errors(registry, path) == (
        (
            f"{path}: rule 'l1-reserved-bits' is given twice in 'rules' (as 'l1-reserved-bits' and 'Q0601'); "
            "give it once"
        ),
    )


def test_a_rule_named_in_a_base_and_again_in_a_child_is_an_override(registry, tmp_path: Path) -> None:
    _config(tmp_path, "rules:\n  l1-reserved-bits: disable\n", "base.yaml")
    child = _config(tmp_path, "extends: base.yaml\nrules:\n  Q0601: {level: info}\n")
    settings = load_config(registry, child).rules["l1-reserved-bits"]
    assert settings.enabled and settings.severity is Severity.INFO


# --- rule metadata: checked when the rule is read -----------------------------------


def _meta(**extra: object) -> dict[str, object]:
    return {
        "NAME": "say-hello",
        "CODE": "T0101",
        "SEVERITY": "info",
        "SCOPE": "Header",
        "check": True,
        "doc": "Says hello.",
        "OPTIONS": {"greeting": "hello", "times": 1},
        **extra,
    }


@pytest.mark.parametrize(
    ("constraints", "problem"),
    [
        ({"volume": {"minimum": 0}}, "not in OPTIONS"),
        ({"times": {"minimun": 0}}, "keys among choices, minimum, maximum"),
        ({"times": {}}, "keys among"),
        ({"greeting": {"choices": ()}}, "non-empty tuple of str"),
        ({"greeting": {"choices": ("hi", 3)}}, "non-empty tuple of str"),
        ({"greeting": {"choices": ("hi", "bye")}}, "the default 'hello' must be one of"),
        ({"greeting": {"minimum": 0}}, "needs a number option"),
        ({"times": {"minimum": 2}}, "the default 1 must be >= 2"),
        ({"times": {"minimum": "0"}}, "needs a number option and a number"),
        ([("times", {"minimum": 0})], "OPTION_CONSTRAINTS must map"),
    ],
)
def test_bad_option_constraints_are_refused(constraints: object, problem: str) -> None:
    with pytest.raises(RegistryError, match=re.escape(problem)):
        from_source(_meta(OPTION_CONSTRAINTS=constraints), "t.say_hello", "/x/say_hello.py", "t")


def test_default_enabled_must_be_a_bool() -> None:
    with pytest.raises(RegistryError, match="DEFAULT_ENABLED must be True or False"):
        from_source(_meta(DEFAULT_ENABLED="no"), "t.say_hello", "/x/say_hello.py", "t")
    rule = from_source(
        _meta(DEFAULT_ENABLED=False, OPTION_CONSTRAINTS={"times": {"minimum": 1, "maximum": 9}}),
        "t.say_hello",
        "/x/say_hello.py",
        "t",
    )
    assert not rule.default_enabled
    assert option_schema(rule)["times"] == {"type": "integer", "default": 1, "minimum": 1, "maximum": 9}


# --- off by default, and the pedantic preset ----------------------------------------

#: The rules off by default: legal layouts QEMU's own tools write, and the
#: policies for untrusted images (see docs/configuration.md).
OFF_BY_DEFAULT = {
    "file-trailing-partial-cluster",
    "extl2-allocated-empty-bitmap",
    "snapshot-v2-resize",
    "snapshot-disk-size-differs",
    "l1-larger-than-needed",
    "backing-file-present",
    "backing-file-unsafe-name",
    "data-file-present",
    "data-file-unsafe-name",
    "luks-iterations-too-high",
    "virtual-size-too-large",
    "open-metadata-too-large",
    "header-v2-has-v3-bytes",
}


def test_which_rules_are_off_by_default(registry) -> None:
    assert {rule.name for rule in registry if not rule.default_enabled} == OFF_BY_DEFAULT
    defaults = load_config(registry, start=Path("/"))
    assert {name for name, s in defaults.rules.items() if not s.enabled} == OFF_BY_DEFAULT


@pytest.mark.parametrize("preset", ["default", "strict"])
def test_default_and_strict_leave_them_off(registry, preset: str) -> None:
    config = load_config(registry, preset=preset)
    assert {name for name, s in config.rules.items() if not s.enabled} == OFF_BY_DEFAULT


def test_pedantic_enables_every_rule_at_its_own_level(registry) -> None:
    config = load_config(registry, preset="pedantic")
    assert all(s.enabled for s in config.rules.values())
    assert all(config.rules[rule.name].severity is rule.severity for rule in registry)
    assert not config.warnings_are_errors


def test_untrusted_enables_its_policy_rules_at_error(registry) -> None:
    config = load_config(registry, preset="untrusted")
    policy = {
        "backing-file-present",
        "backing-file-unsafe-name",
        "data-file-present",
        "data-file-unsafe-name",
        "luks-iterations-too-high",
        "virtual-size-too-large",
        "open-metadata-too-large",
    }
    for name in policy:
        assert config.rules[name].enabled and config.rules[name].severity is Severity.ERROR, name
    legal = OFF_BY_DEFAULT - policy
    assert not any(config.rules[name].enabled for name in legal)


def test_the_reference_config_keeps_them_off(registry) -> None:
    text = reference_config(registry)
    for name in OFF_BY_DEFAULT:
        assert re.search(rf"^  {name}: \{{level: \w+, enabled: false", text, re.MULTILINE), name


def test_an_off_rule_is_enabled_by_naming_it(registry, tmp_path: Path) -> None:
    path = _config(tmp_path, "rules:\n  file-trailing-partial-cluster: {level: warning}\n  Q1090: enable\n")
    config = load_config(registry, path)
    assert config.rules["file-trailing-partial-cluster"].enabled
    assert config.rules["file-trailing-partial-cluster"].severity is Severity.WARNING
    assert config.rules["data-file-present"].enabled


def test_plugins_expose_the_same_metadata_as_module_attributes(registry, tmp_path: Path) -> None:
    """A rule plugin (entry-point door) is an imported module: its
    OPTION_CONSTRAINTS and DEFAULT_ENABLED are plain attributes, checked alike."""
    from types import SimpleNamespace

    from qcow2lint.records import Header
    from qcow2lint.registry import validate

    plugin = SimpleNamespace(
        NAME="say-hello",
        CODE="T0101",
        SEVERITY="info",
        SCOPE=Header,
        check=lambda header, ctx: iter(()),
        OPTIONS={"greeting": "hello"},
        OPTION_CONSTRAINTS={"greeting": {"choices": ("hello", "hi")}},
        DEFAULT_ENABLED=False,
        __doc__="Says hello.",
    )
    rule = validate(plugin, "say-hello", "test")
    assert not rule.default_enabled
    assert option_schema(rule) == {"greeting": {"type": "string", "default": "hello", "enum": ["hello", "hi"]}}
    plugin.OPTION_CONSTRAINTS = {"greeting": {"choices": ("hi",)}}
    with pytest.raises(RegistryError, match="the default 'hello' must be one of 'hi'"):
        validate(plugin, "say-hello", "test")
