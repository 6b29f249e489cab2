"""A run with no rule enabled checks nothing and would pass every image:
a usage error (one line, exit 2) on every entry path, the command line's
typer command and its plain fast path, and ``qcow2lint.lint()``
(ConfigError).  An empty item of ``--select``/``--extend-select``/
``--ignore`` (an unset CI variable, a stray comma) is an error of its own."""

from __future__ import annotations

from pathlib import Path

import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import Bases, assert_one_line_error, run_cli

import qcow2lint
from qcow2lint.config import Config, ConfigError, RuleSettings
from qcow2lint.registry import load_registry


@pytest.fixture
def broken(base_images: Bases, tmp_path: Path) -> Path:
    """An image with an error finding (an L1 reserved bit)."""
    path = base_images.copy("v3", tmp_path, "broken.qcow2")
    img = ib.Qcow2Image(path)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    return path


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--select", ""], "--select"),  # --select "$RULES" with RULES unset
        (["--select", ","], "--select"),
        (["--select", " "], "--select"),
        (["--select", "Q01,"], "--select"),
        (["--extend-select", ""], "--extend-select"),
        (["--ignore", ""], "--ignore"),
    ],
)
def test_an_empty_rule_name_is_a_usage_error(broken: Path, args: list[str], option: str) -> None:
    result = run_cli("check", *args, broken)
    assert_one_line_error(result)
    assert result.stderr == f"qcow2lint: error: {option}: empty rule name (an unset variable, or a stray comma?)\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (["--ignore", "ALL"], "disabled by --ignore: "),
        (["--select", "Q07", "--ignore", "Q07"], "disabled by --ignore: "),
        (["--select", "Q07", "--ignore", "ALL"], "disabled: not in --select: "),
    ],
)
def test_no_rule_enabled_is_a_usage_error(broken: Path, args: list[str], cause: str) -> None:
    result = run_cli("check", *args, broken)
    assert_one_line_error(result)
    assert result.stderr.startswith("qcow2lint: error: no rule is enabled, so nothing would be checked (")
    assert cause in result.stderr and result.stdout == ""
    assert run_cli("config", *args).returncode == 2


def _all_off(directory: Path) -> Path:
    config = directory / ".qcow2lint.yaml"
    config.write_text("rules:\n" + "".join(f"  {rule.name}: disable\n" for rule in load_registry()))
    return config


def test_a_configuration_that_disables_every_rule_is_a_usage_error(broken: Path) -> None:
    """Discovered by a plain ``check IMAGE`` (the fast path without typer)."""
    config = _all_off(broken.parent)
    result = run_cli("check", broken.name, cwd=broken.parent)
    assert_one_line_error(result)
    assert f"no rule is enabled, so nothing would be checked (off in {config}: " in result.stderr
    assert result.stdout == ""
    enabled_here = run_cli("check", "--extend-select", "l1-reserved-bits", broken.name, cwd=broken.parent)
    assert enabled_here.returncode == 1 and "l1-reserved-bits" in enabled_here.stdout


def test_lint_refuses_a_configuration_without_rules(broken: Path) -> None:
    config = _all_off(broken.parent)
    with pytest.raises(ConfigError, match="no rule is enabled"):
        qcow2lint.lint(broken, config=config)
    registry = load_registry()
    with pytest.raises(ConfigError, match="no rule is enabled"):
        qcow2lint.lint(broken, config=Config({r.name: RuleSettings(False, r.severity, r.options) for r in registry}))
    one_on = {r.name: RuleSettings(r.name == "l1-reserved-bits", r.severity, r.options) for r in registry}
    assert [f.rule for f in qcow2lint.lint(broken, config=Config(one_on)).findings] == ["l1-reserved-bits"]
