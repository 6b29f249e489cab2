"""Many images at once: directories, globs, magic sniffing, Git LFS pointers,
``--jobs`` (same bytes whatever N), ``--exit-zero`` and the progress line."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import (
    Bases,
    assert_no_traceback,
    assert_one_line_error,
    cli_argv,
    run_cli,
    run_cli_bytes,
)

from qcow2lint.inputs import Unmatched, expand

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


def _broken(base_images: Bases, directory: Path, name: str) -> Path:
    """A copy of the v3 base with an L1 reserved bit set (an error finding)."""
    path = base_images.copy("v3", directory, name)
    img = ib.Qcow2Image(path)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    return path


@pytest.fixture
def tree(base_images: Bases, tmp_path: Path) -> Path:
    """images/{a.qcow2 (clean), b.disk (magic, broken), notes.txt, sub/c.qcow2 (clean),
    sub/deeper/d.QCOW2 (broken), sub/loop -> .., .git/x.qcow2}"""
    root = tmp_path / "images"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    base_images.copy("v3", root, "a.qcow2")
    _broken(base_images, root, "b.disk")
    (root / "notes.txt").write_text("not an image\n")
    base_images.copy("v3", root / "sub", "c.qcow2")
    _broken(base_images, root / "sub" / "deeper", "d.QCOW2")
    os.symlink("..", root / "sub" / "loop")
    base_images.copy("v3", root / ".git", "x.qcow2")
    return root


def _checked(stdout: str) -> list[str]:
    """Image paths in the order of their summary lines."""
    return [line.rsplit(": ", 1)[0] for line in stdout.splitlines() if line.endswith(("no findings", "info"))]


def test_directory_is_searched_recursively_sorted_skipping_loops(tree: Path) -> None:
    result = run_cli("check", "images", cwd=tree.parent)
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    assert _checked(result.stdout) == [
        "images/a.qcow2",
        "images/b.disk",  # no .qcow2 suffix: found by its magic
        "images/sub/c.qcow2",
        "images/sub/deeper/d.QCOW2",
    ]  # notes.txt skipped, sub/loop not re-entered, .git not searched


def test_expand_is_deterministic_and_deduplicates(tree: Path) -> None:
    first = expand([tree, tree / "a.qcow2", tree / "sub" / "loop" / "a.qcow2"])
    assert first == expand([tree])
    assert [Path(p).name for p in first] == ["a.qcow2", "b.disk", "c.qcow2", "d.QCOW2"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("images/*.qcow2", ["images/a.qcow2"]),
        ("images/**/*.qcow2", ["images/a.qcow2", "images/sub/c.qcow2"]),
        ("images/**/*.[qQ][cC][oO][wW]2", ["images/a.qcow2", "images/sub/c.qcow2", "images/sub/deeper/d.QCOW2"]),
        ("images/sub/dee*", ["images/sub/deeper/d.QCOW2"]),  # a matched directory is searched
        ("images/.git/*", ["images/.git/x.qcow2"]),  # a dot spelt out matches hidden names
    ],
)
def test_glob_patterns_are_expanded_when_the_shell_did_not(tree: Path, pattern: str, expected: list[str]) -> None:
    result = run_cli("check", pattern, cwd=tree.parent)
    assert_no_traceback(result)
    assert _checked(result.stdout) == expected


@pytest.mark.parametrize("argument", ["images/*.vmdk", "missing.qcow2", "images/sub/deeper/nothing-*"])
def test_a_path_that_matches_nothing_exits_2_with_one_line(tree: Path, argument: str) -> None:
    result = run_cli("check", argument, cwd=tree.parent)
    assert_one_line_error(result)
    assert argument in result.stderr


def test_an_empty_directory_matches_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    result = run_cli("check", tmp_path / "empty")
    assert_one_line_error(result)
    assert "no qcow2 image" in result.stderr


def test_unmatched_argument_is_reported_in_place_and_the_others_are_checked(tree: Path) -> None:
    result = run_cli("check", "--format", "json", "images/*.vmdk", "images/a.qcow2", cwd=tree.parent)
    assert result.returncode == 2
    images = json.loads(result.stdout)["images"]
    assert [i["path"] for i in images] == ["images/*.vmdk", "images/a.qcow2"]
    assert "matches no file" in images[0]["error"] and "error" not in images[1]


def test_git_lfs_pointer_gets_a_clear_one_line_message(tmp_path: Path) -> None:
    pointer = tmp_path / "disk.qcow2"
    pointer.write_text(LFS_POINTER)
    result = run_cli("check", pointer)
    assert_one_line_error(result)
    assert "Git LFS pointer" in result.stderr and "git lfs pull" in result.stderr
    dump = run_cli("dump", pointer)
    assert_one_line_error(dump)
    assert "git lfs pull" in dump.stderr


def test_git_lfs_pointer_found_in_a_directory(base_images: Bases, tmp_path: Path) -> None:
    base_images.copy("v3", tmp_path, "a.qcow2")
    (tmp_path / "b.qcow2").write_text(LFS_POINTER)
    result = run_cli("check", tmp_path)
    assert_one_line_error(result)
    assert "b.qcow2" in result.stderr and "git lfs pull" in result.stderr
    assert "a.qcow2: no findings" in result.stdout


def test_a_text_file_that_only_mentions_lfs_is_still_a_finding(tmp_path: Path) -> None:
    path = tmp_path / "x.qcow2"
    path.write_text("hello " + LFS_POINTER)
    result = run_cli("check", path)
    assert result.returncode == 1 and "header-bad-magic" in result.stdout


def test_expand_reports_unmatched(tmp_path: Path) -> None:
    [entry] = expand([str(tmp_path / "*.qcow2")])
    assert isinstance(entry, Unmatched) and "matches no file" in str(entry)


# ---------------------------------------------------------------------------
# What cannot be searched or read is an error, never skipped in silence
# ---------------------------------------------------------------------------


@pytest.fixture
def locked(base_images: Bases, tmp_path: Path) -> Iterator[Path]:
    """top/{ok.qcow2 (clean), locked/ (mode 000) holding x.qcow2 (broken)}."""
    top = tmp_path / "top"
    (top / "locked").mkdir(parents=True)
    base_images.copy("v3", top, "ok.qcow2")
    _broken(base_images, top / "locked", "x.qcow2")
    (top / "locked").chmod(0)
    yield top
    (top / "locked").chmod(0o755)  # so that pytest can remove it


@pytest.mark.parametrize("argument", ["top", "top/*", "top/**/*.qcow2", "top/**"])
def test_an_unreadable_subdirectory_is_an_error_and_the_others_are_checked(locked: Path, argument: str) -> None:
    result = run_cli("check", argument, cwd=locked.parent, unprivileged=True)
    assert_one_line_error(result)
    assert result.stderr == "qcow2lint: error: top/locked: cannot search directory: permission denied\n"
    assert "top/ok.qcow2: no findings" in result.stdout


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("top/locked", "top/locked: cannot search directory: permission denied"),
        ("top/locked/x.qcow2", "top/locked/x.qcow2: cannot access: permission denied"),
        ("top/locked/*.qcow2", "top/locked: cannot search directory: permission denied"),
    ],
)
def test_a_path_inside_an_unreadable_directory_says_permission_denied(
    locked: Path, argument: str, message: str
) -> None:
    result = run_cli("check", argument, cwd=locked.parent, unprivileged=True)
    assert_one_line_error(result)
    assert result.stderr == f"qcow2lint: error: {message}\n"


def test_a_directory_that_can_be_listed_but_not_entered_is_an_error(locked: Path) -> None:
    (locked / "locked").chmod(0o644)  # read (list names), no search (x): its entries cannot be looked at
    result = run_cli("check", "top", cwd=locked.parent, unprivileged=True)
    assert_one_line_error(result)
    assert "top/locked: cannot search directory: permission denied" in result.stderr


def test_an_unreadable_file_that_might_be_an_image_is_an_error(base_images: Bases, tmp_path: Path) -> None:
    """A file found by its magic must be read to be found: one that cannot
    be read is named, not passed over."""
    base_images.copy("v3", tmp_path, "ok.qcow2")
    _broken(base_images, tmp_path, "disk.img").chmod(0)
    result = run_cli("check", tmp_path, unprivileged=True)
    assert_one_line_error(result)
    assert f"{tmp_path / 'disk.img'}: cannot read it to look for the qcow2 magic: permission denied" in result.stderr
    assert "ok.qcow2: no findings" in result.stdout


def test_an_excluded_unreadable_directory_is_not_searched(locked: Path) -> None:
    for argument in ("top", "top/**/*.qcow2"):
        result = run_cli("check", "--exclude", "top/locked", argument, cwd=locked.parent, unprivileged=True)
        assert (result.returncode, result.stderr) == (0, ""), argument


def test_an_image_name_that_is_no_regular_file_is_an_error_in_a_directory_and_a_glob(
    base_images: Bases, tmp_path: Path
) -> None:
    """One rule for a directory search and a glob: an entry named *.qcow2
    that cannot be checked (a dangling symbolic link, a FIFO) is an error
    line; the FIFO is never opened (that would wait for a writer)."""
    top = tmp_path / "top"
    top.mkdir()
    base_images.copy("v3", top, "ok.qcow2")
    os.symlink("nowhere.qcow2", top / "dangling.qcow2")
    os.mkfifo(top / "fifo.qcow2")
    os.mkfifo(top / "pipe")  # no image name: not a candidate, never opened to sniff
    for argument in ("top", "top/*.qcow2"):
        assert expand([str(tmp_path / argument)]) == [
            str(top / "dangling.qcow2"),
            str(top / "fifo.qcow2"),
            str(top / "ok.qcow2"),
        ], argument
        result = run_cli("check", argument, cwd=tmp_path)
        assert_no_traceback(result)
        assert result.returncode == 2 and "top/ok.qcow2: no findings" in result.stdout, argument
        assert result.stderr.splitlines() == [
            "qcow2lint: error: top/dangling.qcow2: cannot open: No such file or directory",
            "qcow2lint: error: top/fifo.qcow2: is not a regular file or block device",
        ], argument


# ---------------------------------------------------------------------------
# --jobs
# ---------------------------------------------------------------------------


@pytest.fixture
def many(base_images: Bases, tmp_path: Path) -> list[Path]:
    """Clean, broken, v2, bitmap images, an LFS pointer and a missing path, interleaved."""
    paths = [
        base_images.copy("v3", tmp_path, "1-clean.qcow2"),
        _broken(base_images, tmp_path, "2-broken.qcow2"),
        base_images.copy("v2", tmp_path, "3-v2.qcow2"),
        tmp_path / "4-lfs.qcow2",
        _broken(base_images, tmp_path, "5-broken.qcow2"),
        tmp_path / "6-missing.qcow2",
        base_images.copy("v3", tmp_path, "7-clean.qcow2"),
    ]
    paths[3].write_text(LFS_POINTER)
    return paths


@pytest.mark.parametrize("output_format", ["text", "json"])
def test_jobs_output_is_byte_identical(many: list[Path], output_format: str) -> None:
    args = ("check", "--format", output_format, "--statistics", "--dump", *many)
    serial = run_cli_bytes(*args, "--jobs", "1")
    parallel = run_cli_bytes(*args, "--jobs", "3")
    all_cpus = run_cli_bytes(*args, "--jobs", "0")
    assert serial[0] == 2
    assert parallel == serial
    assert all_cpus == serial
    assert b"Traceback" not in serial[2]


def test_jobs_must_not_be_negative(many: list[Path]) -> None:
    result = run_cli("check", "--jobs", "-1", many[0])
    assert result.returncode == 2 and "Traceback" not in result.stderr


CRASH_PLUGIN = '''
"""Kills its own process when the image's name contains 'crash' (tests only)."""
import os
import signal

from qcow2lint.records import Header

NAME = "test-crash"
CODE = "X9999"
SEVERITY = "info"
SCOPE = Header


def check(header, ctx):
    if "crash" in os.path.basename(ctx.image.path):
        os.kill(os.getpid(), signal.SIGKILL)
    return ()
'''


def test_a_worker_crash_is_that_images_error(base_images: Bases, tmp_path: Path) -> None:
    plugin = tmp_path / "plugin"
    dist = plugin / "test_crash_plugin-0.dist-info"
    dist.mkdir(parents=True)
    (plugin / "test_crash_plugin.py").write_text(CRASH_PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: test-crash-plugin\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[qcow2lint.rules]\ntest-crash = test_crash_plugin\n")
    images = [
        base_images.copy("v3", tmp_path, "a.qcow2"),
        base_images.copy("v3", tmp_path, "b-crash.qcow2"),
        _broken(base_images, tmp_path, "c.qcow2"),
        base_images.copy("v3", tmp_path, "d.qcow2"),
    ]
    env = dict(os.environ, PYTHONPATH=str(plugin), NO_COLOR="1")
    proc = subprocess.run(
        [*cli_argv(), "check", "--jobs", "2", *map(str, images)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert "b-crash.qcow2" in line and "crashed" in line and "SIGKILL" in line
    assert _checked(proc.stdout) == [str(images[0]), str(images[2]), str(images[3])]
    assert "l1-reserved-bits" in proc.stdout


# ---------------------------------------------------------------------------
# --exit-zero
# ---------------------------------------------------------------------------


def test_exit_zero(base_images: Bases, tmp_path: Path) -> None:
    broken = _broken(base_images, tmp_path, "broken.qcow2")
    assert run_cli("check", broken).returncode == 1
    result = run_cli("check", "--exit-zero", broken)
    assert result.returncode == 0 and "l1-reserved-bits" in result.stdout
    assert run_cli("check", "--exit-zero", "--fail-level", "info", "--format", "json", broken).returncode == 0
    # unreadable inputs and usage errors still exit 2
    assert run_cli("check", "--exit-zero", broken, tmp_path / "missing.qcow2").returncode == 2
    assert run_cli("check", "--exit-zero", "--format", "xml", broken).returncode == 2


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


def _run_with_tty_stderr(args: list[str], env: dict[str, str]) -> tuple[int, bytes, bytes]:
    """Run qcow2lint with stderr on a pseudo-terminal; stdout stays a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*cli_argv(), *args], stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    stdout = proc.stdout.read() if proc.stdout else b""
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, stdout, b"".join(chunks)


@pytest.fixture
def tty_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "NO_COLOR", "GITHUB_ACTIONS")}
    return dict(env, QCOW2LINT_PROGRESS_DELAY="0", TERM="xterm", COLUMNS="120")


def test_progress_on_a_terminal_only(base_images: Bases, tmp_path: Path, tty_env: dict[str, str]) -> None:
    images = [base_images.copy("v3", tmp_path, f"{i}.qcow2") for i in range(3)]
    code, stdout, stderr = _run_with_tty_stderr(["check", *map(str, images)], tty_env)
    assert code == 0
    assert b"checking" in stderr, stderr  # the delay is 0 here: every image shows it
    assert stdout.count(b"no findings") == 3 and b"checking" not in stdout
    # machine formats and CI never get one
    code, stdout, stderr = _run_with_tty_stderr(["check", "--format", "json", *map(str, images)], tty_env)
    assert b"checking" not in stderr and json.loads(stdout)
    _, _, stderr = _run_with_tty_stderr(["check", *map(str, images)], dict(tty_env, CI="true"))
    assert b"checking" not in stderr


def test_progress_colours_as_color_says_and_shows_names_as_they_are(
    base_images: Bases, tmp_path: Path, tty_env: dict[str, str]
) -> None:
    """The progress line follows --color and NO_COLOR like the report (no
    SGR sequence with never), and a file name is shown as it is: rich's
    markup in it is text, a control character in it is escaped."""
    image = base_images.copy("v3", tmp_path, "[bold red]x[blink]\x1b[31m.qcow2")
    sgr = re.compile(rb"\x1b\[[0-9;]*m")
    _, _, coloured = _run_with_tty_stderr(["check", "--color", "always", str(image)], tty_env)
    assert sgr.search(coloured), coloured
    for args, env in (
        (["--color", "never"], tty_env),
        ([], dict(tty_env, NO_COLOR="1")),
    ):
        _, _, stderr = _run_with_tty_stderr(["check", *args, str(image)], env)
        assert b"checking" in stderr and not sgr.search(stderr), stderr
        assert b"[bold red]x[blink]\\x1b[31m.qcow2" in stderr, stderr


def test_no_progress_before_the_delay(base_images: Bases, tmp_path: Path, tty_env: dict[str, str]) -> None:
    """On a terminal, nothing is drawn for an image checked within the delay
    (an hour here, so the outcome does not depend on the machine's speed)."""
    image = base_images.copy("v3", tmp_path)
    code, _, stderr = _run_with_tty_stderr(["check", str(image)], dict(tty_env, QCOW2LINT_PROGRESS_DELAY="3600"))
    assert code == 0 and stderr == b""


def test_the_progress_delay_defaults_to_one_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without QCOW2LINT_PROGRESS_DELAY an image gets a line after 1 s; the
    variable sets the delay, a bad value keeps the default."""
    from qcow2lint.progress import Progress

    monkeypatch.delenv("QCOW2LINT_PROGRESS_DELAY", raising=False)
    assert Progress(1).delay == 1.0
    monkeypatch.setenv("QCOW2LINT_PROGRESS_DELAY", "2.5")
    assert Progress(1).delay == 2.5
    monkeypatch.setenv("QCOW2LINT_PROGRESS_DELAY", "soon")
    assert Progress(1).delay == 1.0


def test_progress_does_not_import_rich_unless_drawn() -> None:
    code = textwrap.dedent(
        """
        import sys
        from qcow2lint.progress import Progress
        p = Progress(1, delay=3600)
        with p.waiting(0, "x"):
            pass
        assert "rich" not in sys.modules, "rich imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True)
