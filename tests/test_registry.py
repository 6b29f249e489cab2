"""The rule-package door: a module dropped into a rule package is a rule,
read without importing it, and imported the first time its check runs."""

from __future__ import annotations

import marshal
import os
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from harness import REPO_ROOT

from qcow2lint import cache, gen, rulefiles
from qcow2lint.registry import PACKAGE_GROUP, SCOPES, RegistryError, found_entries, load_package, load_registry
from qcow2lint.rulefiles import index_text

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


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test here writes its cache under ``tmp_path / "cache"``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(cache.DISABLE, raising=False)


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable, empty rule package ``t_rules_<n>``."""
    name = f"t_rules_{len(sys.modules)}"
    directory = tmp_path / "site" / name
    directory.mkdir(parents=True)
    (directory / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(directory.parent))
    return directory


def _load(directory: Path) -> list:
    return load_package(EntryPoint("test", directory.name, PACKAGE_GROUP))


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


def _ast_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the rule files the registry reads with ast from now on."""
    read: list[str] = []
    real = rulefiles.read_rule_file

    def spy(path: str, source: bytes | None = None) -> dict:
        read.append(os.path.basename(path))
        return real(path, source)

    monkeypatch.setattr(rulefiles, "read_rule_file", spy)
    return read


def test_the_built_in_rules_come_from_the_index_without_ast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The committed index holds every built-in rule file as it is: loading
    the registry parses none of them (a stale index is named by
    test_docs.py's generated-files test and by `python -m qcow2lint.gen --check`)."""
    read = _ast_reads(monkeypatch)
    registry = load_registry()
    assert len(registry) >= 150 and read == []


def test_a_rule_the_index_lacks_is_read_with_ast(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (package / "say_hello.py").write_text(RULE)
    (package / "_index.json").write_text(index_text(str(package)))
    read = _ast_reads(monkeypatch)
    assert [r.name for r in _load(package)] == ["say-hello"] and read == []
    (package / "say_bye.py").write_text(RULE.replace("say-hello", "say-bye").replace("T0101", "T0102"))
    assert [r.name for r in _load(package)] == ["say-bye", "say-hello"]
    assert read == ["say_bye.py"]


@pytest.mark.parametrize("edit", [('SEVERITY = "info"', 'SEVERITY = "error"'), ('CODE = "T0101"', 'CODE = "T0102"')])
def test_an_edited_rule_is_read_again_not_taken_from_the_stale_index(
    package: Path, monkeypatch: pytest.MonkeyPatch, edit: tuple[str, str]
) -> None:
    """Edited without regenerating the index (whatever the edit does to the
    file's size: the CODE edit keeps it), the rule has its new declarations."""
    path = package / "say_hello.py"
    path.write_text(RULE)
    (package / "_index.json").write_text(index_text(str(package)))
    read = _ast_reads(monkeypatch)
    path.write_text(RULE.replace(*edit))
    [rule] = _load(package)
    assert (str(rule.severity), rule.code) == (("error", "T0101") if "SEVERITY" in edit[0] else ("info", "T0102"))
    assert read == ["say_hello.py"]


def test_a_damaged_index_costs_only_the_ast_reading(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (package / "say_hello.py").write_text(RULE)
    read = _ast_reads(monkeypatch)
    size, crc = rulefiles.fingerprint(RULE.encode())
    junk = (
        '{"format": 1, "files": {',
        "\xff\xfe",
        '[{"format": 1}]',
        '{"format": 99, "files": {}}',
        '{"format": 1, "files": {"say_hello.py": 3}}',
        f'{{"format": 1, "files": {{"say_hello.py": [{size}, {crc}, "meta"]}}}}',  # the file as it is, but no dict
    )
    for text in junk:
        (package / "_index.json").write_text(text)
        assert [r.code for r in _load(package)] == ["T0101"]
    assert read == ["say_hello.py"] * len(junk)


def test_gen_check_names_the_stale_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rule edited without regenerating: the generated files of the repository
    at ROOT are all current but the index."""
    for name in gen.expected(REPO_ROOT, load_registry()):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO_ROOT / name, tmp_path / name)
    for path in (REPO_ROOT / "rules").glob("*.py"):
        shutil.copyfile(path, tmp_path / "rules" / path.name)
    assert gen.main(["--check", str(tmp_path)]) == 0
    capsys.readouterr()
    rule = sorted((tmp_path / "rules").glob("[a-z]*.py"))[0]
    rule.write_text(rule.read_text() + "# edited\n")
    assert gen.main(["--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out == "rules/_index.json is stale: run `python -m qcow2lint.gen` in the repository\n"
    assert gen.main([str(tmp_path)]) == 0
    assert gen.main(["--check", str(tmp_path)]) == 0


def test_a_rule_module_runs_the_code_of_the_file_that_was_read(package: Path) -> None:
    """The module is imported from the very file the registry read, and an
    edited file, loaded again, runs its new code."""

    class Ctx:
        options = {"greeting": "hi"}

    path = package / "say_hello.py"
    path.write_text(RULE)
    [rule] = _load(package)
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


def _cached_files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "cache" / "qcow2lint"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_damaged_cache_file_is_ignored(package: Path, tmp_path: Path) -> None:
    group = "qcow2lint.test_damage"
    assert found_entries((group,)) == {group: []}
    [entry] = _cached_files(tmp_path)
    for junk in (b"", b"\x00garbage", entry.read_bytes()[:-3], marshal.dumps((1, 2)), marshal.dumps(([], 1))):
        entry.write_bytes(junk)
        assert found_entries((group,)) == {group: []}
        assert entry.read_bytes() != junk  # rewritten


def test_no_cache_is_read_or_written_when_it_is_turned_off(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}
    for value, written in (("1", False), ("0", True)):
        proc = subprocess.run(
            [sys.executable, "-m", "qcow2lint", "rules"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={**env, cache.DISABLE: value},
        )
        assert proc.returncode == 0 and "l1-reserved-bits" in proc.stdout, proc.stderr
        assert bool(_cached_files(tmp_path)) is written, value
    assert not (tmp_path / "home").exists()


def test_an_optimised_run_has_entries_of_its_own(tmp_path: Path) -> None:
    """``python -O`` (which drops asserts) shares no cache entry with a plain run."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop(cache.DISABLE, None)
    probe = "from qcow2lint.registry import found_entries; print(len(found_entries(('qcow2lint.rules',))))"
    for flags, count in (([], 1), (["-O"], 2), ([], 2), (["-OO"], 3), (["-O"], 3)):
        proc = subprocess.run(
            [sys.executable, *flags, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        assert len(_cached_files(tmp_path)) == count, flags


def test_the_cache_is_pruned(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "qcow2lint"
    folder.mkdir(parents=True)
    earlier = folder / "rules-0123abcd.cpython-311.marshal"  # the code cache of earlier versions
    earlier.write_bytes(b"x" * 1000)
    mine = folder / "notes.txt"  # not the cache's: left alone
    mine.write_text("keep")
    for number in range(cache.KEPT + 5):
        before = set(folder.iterdir())
        cache.store("test", number, [number])
        [written] = set(folder.iterdir()) - before
        os.utime(written, ns=(number + 1, number + 1))  # the order of writing, whatever the clock's resolution
    names = {path.name for path in folder.iterdir()}
    assert len(names) == cache.KEPT + 1 and mine.name in names and earlier.name not in names
    assert [cache.load("test", number) for number in range(cache.KEPT + 5)] == [None] * 5 + [
        [n] for n in range(5, cache.KEPT + 5)
    ]


def test_the_cache_directory_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.directory() == str(tmp_path / "cache" / "qcow2lint")  # private_cache's XDG_CACHE_HOME
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # not absolute: ignored, as XDG says
    assert cache.directory() == str(tmp_path / "home" / ".cache" / "qcow2lint")
    monkeypatch.setenv(cache.DISABLE, "1")
    assert cache.directory() is None


def test_the_entry_point_index_is_used_until_a_distribution_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached index answers while sys.path's distributions stay the same,
    and notices a plugin installed, rewritten in place, and removed."""
    import importlib.metadata

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
        _load(package)
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
