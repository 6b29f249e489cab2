"""backing-file-missing: the backing name resolved as QEMU resolves it.

A relative name is relative to the image's directory (not the working
directory), an absolute one is used as it is, a protocol name is not a file
and is left to the other rules; `check-exists: false` and the untrusted
preset turn the rule off.  (tests/test_qemu_refusals.py shows qemu-io
refusing an overlay whose base is missing.)
"""

from __future__ import annotations

import os
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import assert_one_line_error, run_cli, write_config

import qcow2lint

RULE = "backing-file-missing"


def overlay(path: Path, backing: str, fmt: str = "qcow2") -> Path:
    ib.run_tool([ib.QEMU_IMG, "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", fmt, path, "64M"])
    return path


def fired(path: Path, **kwargs: object) -> list[qcow2lint.findings.Finding]:
    return [f for f in qcow2lint.lint(path, **kwargs).findings if f.rule == RULE]


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """images/base.qcow2 and images/overlay.qcow2 naming "base.qcow2"."""
    images = tmp_path / "images"
    images.mkdir()
    ib.create(images / "base.qcow2", 64 << 20)
    overlay(images / "overlay.qcow2", "base.qcow2")
    return images


def test_relative_name_resolves_against_the_image_directory(
    layout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # base.qcow2 is not in the working directory
    assert not (tmp_path / "base.qcow2").exists()
    assert fired(Path("images/overlay.qcow2"), preset="default") == []
    assert ib.run_tool([ib.QEMU_IO, "-r", "-c", "quit", "images/overlay.qcow2"], check=False).returncode == 0


def test_a_missing_base_is_a_warning_naming_the_path_looked_for(layout: Path) -> None:
    (layout / "base.qcow2").unlink()
    [finding] = fired(layout / "overlay.qcow2", preset="default")
    assert str(finding.severity) == "warning"
    assert "'base.qcow2'" in finding.message and str(layout / "base.qcow2") in finding.message
    proc = ib.run_tool([ib.QEMU_IO, "-r", "-c", "quit", layout / "overlay.qcow2"], check=False)
    assert "Could not open backing file" in proc.stderr


def test_absolute_names_are_used_as_they_are(tmp_path: Path) -> None:
    ib.create(tmp_path / "base.qcow2", 64 << 20)
    present = overlay(tmp_path / "present.qcow2", str(tmp_path / "base.qcow2"))
    absent = overlay(tmp_path / "absent.qcow2", str(tmp_path / "elsewhere" / "base.qcow2"))
    assert fired(present, preset="default") == []
    assert len(fired(absent, preset="default")) == 1


def test_a_dangling_symbolic_link_is_missing(layout: Path) -> None:
    # QEMU follows the link: a link to nothing is no base
    (layout / "base.qcow2").unlink()
    os.symlink(layout / "gone.qcow2", layout / "base.qcow2")
    assert len(fired(layout / "overlay.qcow2", preset="default")) == 1


def test_protocol_names_are_not_files(tmp_path: Path) -> None:
    path = overlay(tmp_path / "nbd.qcow2", "nbd://localhost:10809/export", "raw")
    assert fired(path, preset="default") == []


def test_check_exists_false_and_the_untrusted_preset_turn_it_off(layout: Path, tmp_path: Path) -> None:
    (layout / "base.qcow2").unlink()
    config = write_config(tmp_path, f"rules:\n  {RULE}: {{check-exists: false}}\n")
    assert fired(layout / "overlay.qcow2", config=config) == []
    assert fired(layout / "overlay.qcow2", preset="untrusted") == []


def test_disabled_in_config_a_missing_base_is_not_reported(layout: Path, tmp_path: Path) -> None:
    (layout / "base.qcow2").unlink()
    assert fired(layout / "overlay.qcow2", preset="default")
    config = write_config(tmp_path, f"rules:\n  {RULE}: disable\n")
    assert fired(layout / "overlay.qcow2", config=config) == []


def test_selecting_the_rule_while_check_exists_is_false_is_a_usage_error(layout: Path, tmp_path: Path) -> None:
    """With check-exists false the rule cannot report anything: naming it in
    --select or --extend-select says which option to set instead of running
    silently; a prefix or ALL selects it without complaint."""
    from qcow2lint.config import ConfigError, load_config
    from qcow2lint.registry import load_registry
    from qcow2lint.selection import CommandLine, apply_command_line

    registry = load_registry()
    config_file = write_config(tmp_path, f"rules:\n  {RULE}: {{check-exists: false}}\n")
    config = load_config(registry, config_file)
    for line in (CommandLine(select=(RULE,)), CommandLine(extend_select=("Q0393",))):
        with pytest.raises(ConfigError, match="reports nothing with check-exists: false.*set check-exists to true"):
            apply_command_line(config, registry, line)
    for line in (
        CommandLine(select=("ALL",)),
        CommandLine(select=("Q03",)),
        CommandLine(select=(RULE, "dirty-bit-set"), ignore=(RULE,)),
    ):
        apply_command_line(config, registry, line)
    apply_command_line(load_config(registry, preset="default"), registry, CommandLine(select=(RULE,)))
    result = run_cli("check", "-c", config_file, "--select", RULE, layout / "overlay.qcow2")
    assert_one_line_error(result)
    assert "--select: backing-file-missing reports nothing with check-exists: false" in result.stderr
