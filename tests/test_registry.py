"""The rule-package door: a module dropped into a rule package is a rule,
read without importing it, and imported the first time its check runs."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from qcow2lint.registry import PACKAGE_GROUP, SCOPES, RegistryError, found_entries, load_package

RULE = '''"""Says hello to every header.

QEMU: does not care.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header as Head

NAME = "say-hello"
CODE = "T0101"
SEVERITY = "info"
SCOPE = Head
OPTIONS = {"greeting": "hello"}


def check(header, ctx):
    yield Problem(0, "header", ctx.options["greeting"])
'''


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable, empty rule package ``t_rules_<n>`` and a private cache."""
    name = f"t_rules_{len(sys.modules)}"
    directory = tmp_path / "site" / name
    directory.mkdir(parents=True)
    (directory / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(directory.parent))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return directory


def _load(directory: Path, use_cache: bool = True) -> list:
    return load_package(EntryPoint("test", directory.name, PACKAGE_GROUP), use_cache)


def test_a_dropped_in_module_is_a_rule_imported_only_when_it_checks(package: Path) -> None:
    assert _load(package) == []
    (package / "say_hello.py").write_text(RULE)
    (package / "_helpers.py").write_text("NAME = 1\n")  # not a rule: starts with _
    [rule] = _load(package)
    assert (rule.name, rule.code, str(rule.severity), rule.scope) == ("say-hello", "T0101", "info", "Header")
    assert dict(rule.options) == {"greeting": "hello"}
    assert rule.summary == "Says hello to every header." and rule.origin == f"{package.name}.say_hello"
    assert f"{package.name}.say_hello" not in sys.modules

    class Ctx:
        options = {"greeting": "hi"}

    [problem] = rule.check(object(), Ctx())
    assert problem.message == "hi"
    assert f"{package.name}.say_hello" in sys.modules


def test_an_edited_file_is_read_again_despite_the_cache(package: Path) -> None:
    path = package / "say_hello.py"
    path.write_text(RULE)
    assert [r.code for r in _load(package)] == ["T0101"]
    assert list((package.parents[1] / "cache" / "qcow2lint").iterdir())
    path.write_text(RULE.replace('CODE = "T0101"', 'CODE = "T0102"'))  # same size: the mtime tells
    os.utime(path, ns=(1, 1))
    assert [r.code for r in _load(package)] == ["T0102"]


def test_a_rule_module_runs_from_the_cached_code_of_its_current_source(package: Path) -> None:
    """The cache keeps each rule module's compiled code: a later run imports
    the module from it (no bytecode file of its own is read), and an edited
    file runs its new code."""

    class Ctx:
        options = {"greeting": "hi"}

    path = package / "say_hello.py"
    path.write_text(RULE)
    _load(package)  # writes the cache
    [rule] = _load(package)
    assert rule.check.code is not None and rule.check.code.co_filename == str(path)
    [problem] = rule.check(object(), Ctx())
    assert problem.message == "hi"
    assert sys.modules[f"{package.name}.say_hello"].__file__ == str(path)
    del sys.modules[f"{package.name}.say_hello"]
    path.write_text(RULE.replace('ctx.options["greeting"]', 'ctx.options["greeting"] * 2'))
    [rule] = _load(package)
    [problem] = rule.check(object(), Ctx())
    assert problem.message == "hihi"


def test_every_scope_names_a_record_class() -> None:
    """SCOPES is spelled out as names so that listing rules imports no records;
    each must still be a class the engine can hand a rule: a record of the
    file, or a result of the analysis."""
    from qcow2lint import records, results

    for name in SCOPES:
        cls = getattr(records, name, None) or getattr(results, name, None)
        assert isinstance(cls, type) and cls.__name__ == name, name


def test_a_damaged_cache_is_ignored(package: Path) -> None:
    (package / "say_hello.py").write_text(RULE)
    _load(package)
    [cache] = (package.parents[1] / "cache" / "qcow2lint").iterdir()
    for junk in (b"", b"\x00garbage", cache.read_bytes()[:-3]):
        cache.write_bytes(junk)
        assert [r.code for r in _load(package)] == ["T0101"]


def test_the_entry_point_index_is_used_until_a_distribution_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached index answers while sys.path's distributions stay the same,
    and notices a plugin installed, rewritten in place, and removed."""
    import importlib.metadata

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    group = "qcow2lint.test_index"

    def names() -> list[tuple[str, str, str]]:
        return [(entry.name, entry.value, entry.dist) for entry in found_entries((group,))[group]]

    assert names() == []
    real = importlib.metadata.entry_points
    with monkeypatch.context() as patched:  # a valid index answers without importlib.metadata
        patched.setattr(importlib.metadata, "entry_points", lambda: pytest.fail("the index was not used"))
        assert names() == []
        elsewhere = tmp_path / "elsewhere"  # another directory without distributions: the same state
        elsewhere.mkdir()
        patched.setattr(sys, "path", [str(elsewhere) if entry == str(site) else entry for entry in sys.path])
        assert names() == []
    assert importlib.metadata.entry_points is real

    info = site / "t_plugin-1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: t-plugin\nVersion: 1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\nfirst = t_plugin:a\n")
    assert names() == [("first", "t_plugin:a", "t-plugin")]
    (info / "entry_points.txt").write_text(f"[{group}]\nsecond = t_plugin:b\nfirst = t_plugin:a\n")
    assert names() == [("first", "t_plugin:a", "t-plugin"), ("second", "t_plugin:b", "t-plugin")]
    for child in info.iterdir():
        child.unlink()
    info.rmdir()
    assert names() == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (('NAME = "say-hello"', 'NAME = "say-hi"'), "NAME must be the file's name"),
        (('CODE = "T0101"', 'CODE = "T" + "0101"'), "CODE must be a literal"),
        (('CODE = "T0101"', 'CODE = "nope"'), "CODE must look like"),
        (('SEVERITY = "info"', 'SEVERITY = "fatal"'), "SEVERITY"),
        (("SCOPE = Head", "SCOPE = dict"), "SCOPE must be one of"),
        (('OPTIONS = {"greeting": "hello"}', 'OPTIONS = {"level": 1}'), "OPTIONS must map"),
        (('OPTIONS = {"greeting": "hello"}', "OPTIONS = dict(greeting=1)"), "OPTIONS must be a literal"),
        (("def check(header, ctx):", "def inspect(header, ctx):"), "no check"),
        (("def check(header, ctx):", "def check(header, ctx) ->:"), "cannot be parsed"),
    ],
)
def test_a_broken_rule_file_is_named(package: Path, change: tuple[str, str], needle: str) -> None:
    (package / "say_hello.py").write_text(RULE.replace(*change))
    with pytest.raises(RegistryError, match=needle) as caught:
        _load(package, use_cache=False)
    assert str(package / "say_hello.py") in str(caught.value)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["rules"], ["rule", "l1-reserved-bits"], ["config"]])
def test_listing_commands_import_no_numpy_no_analysis_and_no_rule(args: list[str], tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "qcow2lint", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    if args == ["--version"]:  # answered by the entry point, before the CLI
        assert proc.stdout.startswith("qcow2lint ") and "qcow2lint.cli" not in imported
    else:
        assert "qcow2lint.cli" in imported, proc.stderr[-500:]
    unwanted = {m for m in imported if m.split(".")[0] in ("numpy", "qcow2lint_rules") or m == "qcow2lint.analysis"}
    assert not unwanted, sorted(unwanted)
