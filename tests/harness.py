"""The test harness: one home for what the test modules share.

* **Running qcow2lint.**  Rule rows run in-process through the library API
  (:func:`lint`: ``qcow2lint.lint`` with a configuration given as YAML
  text), which is fast; the command-line contract is tested end to end by
  the CLI tests through :func:`run_cli` / :func:`lint_json`.
* **Rows.**  :class:`Row` is one rule test case (a clean base image, a patch
  that makes one defect and says where with a :class:`Target`, and what QEMU
  says about it, :class:`QemuExpect`).  The tables of rows live in the
  non-test modules ``rows_*.py`` (listed in row_tables.py);
  test_rule_rows.py runs every table through the assertion helpers here,
  and test_differential.py compares every row's image with qemu-img check.
* **Images.**  :class:`Bases` builds every named clean base once per session
  (the recipes of baseimages.py, snapshot_builders.py and
  consistency_builders.py, by name); :class:`RowImages` builds each row's
  patched image once per session.
* **Network.**  :func:`require_host` skips a ``network`` test with one line
  when a registry cannot be reached.

Nothing here imports a test module.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

import baseimages
import consistency_builders
import imagebuilder as ib
import pytest
import snapshot_builders

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
GOLDEN_DIR = TESTS_DIR / "golden"

Report = dict[str, Any]
Finding = dict[str, Any]


# --------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------


def pypi_host() -> str:
    """The host of the package index pip uses (``PIP_INDEX_URL``, else PyPI)."""
    return urlparse(os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")).hostname or "pypi.org"


def npm_host() -> str:
    """The host of the npm registry (``NPM_CONFIG_REGISTRY``, else npmjs)."""
    return (
        urlparse(os.environ.get("NPM_CONFIG_REGISTRY", "https://registry.npmjs.org/")).hostname or "registry.npmjs.org"
    )


@functools.cache
def _reachable(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"


def require_host(host: str, port: int = 443) -> None:
    """Skip the calling test (one line) when ``host`` cannot be reached."""
    problem = _reachable(host, port)
    if problem is not None:
        pytest.skip(f"{host}:{port} cannot be reached ({problem})")


# --------------------------------------------------------------------------
# Running the command line
# --------------------------------------------------------------------------


class CliResult(NamedTuple):
    """What one qcow2lint run produced."""

    returncode: int
    stdout: str
    stderr: str


#: The figures of ``qemu-img check --output=json`` the statistics are compared
#: on, in its spelling.
QEMU_STATS_KEYS = (
    "image-end-offset",
    "total-clusters",
    "allocated-clusters",
    "fragmented-clusters",
    "compressed-clusters",
    "leaks",
    "corruptions",
)


# Structure paths of findings, as regular expressions (rows_*.py).


def path_l1(index: int) -> str:
    """Active L1 entry."""
    return re.escape(f"l1[{index}]")


def path_l2(l2_offset: int, index: int) -> str:
    """Entry of the L2 table at ``l2_offset`` (hex, lowercase, no padding)."""
    return re.escape(f"l2@{l2_offset:#x}[{index}]")


def path_reftable(index: int) -> str:
    """Refcount table entry."""
    return re.escape(f"reftable[{index}]")


def cli_argv() -> list[str]:
    """The command that starts qcow2lint in the interpreter running the tests."""
    script = Path(sys.executable).parent / "qcow2lint"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "qcow2lint"]


def cli_on_a_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """Everything ``qcow2lint ARGS`` writes when stdout and stderr are a
    pseudo-terminal."""
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen([*cli_argv(), *args], stdout=follower, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes when the child exits
            break
        if not chunk:
            break
        output += chunk
    process.wait()
    os.close(leader)
    return output


def _unprivileged_prefix() -> list[str]:
    """A command prefix under which file permission bits bind even for root.

    Tests run as root, where chmod 000 / 0444 do not stop open(). Dropping
    CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set (setpriv,
    util-linux) makes uid 0 obey the owner permission bits again.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot make file permissions bind for root")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    probe = subprocess.run(prefix + ["true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"running as root and setpriv cannot drop capabilities here: {probe.stderr!r}")
    return prefix


def _run_cli(
    args: tuple[str | os.PathLike[str], ...], cwd: Path | None, unprivileged: bool
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="200", PYTHONUTF8="1")
    prefix = _unprivileged_prefix() if unprivileged else []
    return subprocess.run(
        prefix + cli_argv() + [str(a) for a in args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
        timeout=300,
    )


#: Runs qcow2lint in the child, then writes the child's peak RSS (VmHWM
#: of its own address space) to the file named by argv[1].  ru_maxrss from
#: wait4 would also count the forking test worker's pages.
_PEAK_WRAPPER = """
import runpy, sys
report, sys.argv = sys.argv[1], ["qcow2lint", *sys.argv[2:]]
try:
    runpy.run_module("qcow2lint", run_name="__main__")
finally:
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""


def run_cli_peak_rss(peak: Path, *args: str | os.PathLike[str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """``qcow2lint ARGS`` in a child (``peak`` receives its measurement):
    the finished process and the child's own peak RSS in bytes."""
    child = subprocess.run(
        [sys.executable, "-c", _PEAK_WRAPPER, str(peak), *map(str, args)], capture_output=True, text=True, check=False
    )
    return child, int(peak.read_text()) * 1024


def run_cli(*args: str | os.PathLike[str], cwd: Path | None = None, unprivileged: bool = False) -> CliResult:
    """Run ``qcow2lint ARGS...`` and return ``(returncode, stdout, stderr)`` as text.

    With ``unprivileged`` the run cannot bypass file permissions even as root
    (see :func:`_unprivileged_prefix`), so a chmod'ed file really is
    unreadable / read-only for qcow2lint.
    """
    proc = _run_cli(args, cwd, unprivileged)
    return CliResult(
        proc.returncode,
        proc.stdout.decode("utf-8", errors="replace"),
        proc.stderr.decode("utf-8", errors="replace"),
    )


def run_cli_bytes(
    *args: str | os.PathLike[str], cwd: Path | None = None, unprivileged: bool = False
) -> tuple[int, bytes, bytes]:
    """Like :func:`run_cli` but returns stdout and stderr as raw bytes (for byte-exact goldens)."""
    proc = _run_cli(args, cwd, unprivileged)
    return proc.returncode, proc.stdout, proc.stderr


def assert_no_traceback(result: CliResult) -> None:
    """qcow2lint must never show a Python traceback."""
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


def assert_one_line_error(result: CliResult) -> None:
    """Exit 2 with exactly one non-empty line on stderr and no traceback."""
    assert_no_traceback(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, f"exit {result.returncode}, stderr={result.stderr!r}"
    assert len(lines) == 1, f"expected one stderr line, got {result.stderr!r}"


def lint_json(path: Path | Iterable[Path], *extra_args: str) -> Report:
    """``qcow2lint check --format json PATH... EXTRA`` parsed; exit must be 0 or 1.

    The returned dict gets an extra key ``"_returncode"`` with the exit code.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    result = run_cli("check", "--format", "json", *paths, *extra_args)
    assert_no_traceback(result)
    assert result.returncode in (0, 1), f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"--format json printed invalid JSON ({exc}):\n{result.stdout}") from exc
    report["_returncode"] = result.returncode
    return report


def findings(report: Report, image: int = 0) -> list[Finding]:
    """The findings of image number ``image`` in a JSON report."""
    return list(report["images"][image]["findings"])


def group_by_rule(items: Iterable[Finding]) -> dict[str, list[Finding]]:
    """``{rule name: [findings]}``."""
    fired: dict[str, list[Finding]] = {}
    for f in items:
        fired.setdefault(f["rule"], []).append(f)
    return fired


def rules_fired(report: Report, image: int = 0) -> dict[str, list[Finding]]:
    """``{rule name: [findings]}`` for one image of a JSON report."""
    return group_by_rule(findings(report, image))


def format_findings(items: Iterable[Finding]) -> str:
    """Findings as readable lines, for assertion messages."""
    return (
        "\n".join(
            f"  {f.get('severity')} {f.get('rule')} @{f.get('offset')!r} {f.get('location')}: {f.get('message')}"
            for f in items
        )
        or "  (none)"
    )


def write_config(directory: Path, text: str, name: str = "qcow2lint.yaml") -> Path:
    """Write a config file and return its path."""
    path = directory / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------
# Linting in-process (the library API)
# --------------------------------------------------------------------------


@functools.cache
def registry() -> Any:
    """The rule registry (loaded once per process)."""
    from qcow2lint.registry import load_registry

    return load_registry()


def registry_rule(name: str) -> Any:
    """The registered rule ``name`` (AssertionError when there is none)."""
    rule = registry().get(name)
    assert rule is not None and rule.name == name, f"no rule {name!r} in the registry"
    return rule


@functools.cache
def _config_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="qcow2lint-test-configs-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


@functools.cache
def config(text: str = "") -> Any:
    """The :class:`qcow2lint.config.Config` of a YAML configuration text
    (``""``: the defaults), loaded as ``--config FILE`` would be."""
    from qcow2lint.config import load_config

    path = _config_dir() / f"c{len(list(_config_dir().iterdir()))}.yaml"
    path.write_text(text or "extends: default\n")
    return load_config(registry(), path)


#: The configuration the rows run with: every rule on, also those off by
#: default (a row tests its rule where it runs; the default preset's choice
#: of rules is tested by test_clean_images.py and the preset tests).
PEDANTIC = "extends: pedantic\n"


def disable(*rules: str) -> str:
    """YAML that disables ``rules``."""
    return "rules:\n" + "".join(f"  {name}: disable\n" for name in rules)


@dataclass(frozen=True)
class Linted:
    """One image's in-process report, with findings as JSON-like dicts."""

    findings: list[Finding]
    stats: dict[str, int] | None
    #: ``report.counts()``: findings per severity
    counts: dict[str, int]

    @property
    def fired(self) -> dict[str, list[Finding]]:
        """``{rule name: [findings]}``."""
        return group_by_rule(self.findings)

    @property
    def exit_code(self) -> int:
        """What ``qcow2lint check`` exits with for this image alone (default fail level)."""
        return 1 if any(f["severity"] == "error" for f in self.findings) else 0


def finding_dict(finding: Any) -> Finding:
    """A library finding as the JSON report spells it."""
    return {
        "rule": finding.rule,
        "code": finding.code,
        "severity": str(finding.severity),
        "offset": finding.offset,
        "location": finding.location,
        "message": finding.message,
    }


def lint(path: Path, yaml: str = "", *, deep: bool = False, statistics: bool = False) -> Linted:
    """``qcow2lint.lint`` with the configuration ``yaml`` (``""``: defaults)."""
    import qcow2lint

    report = qcow2lint.lint(path, config=config(yaml), deep=deep, statistics=statistics)
    return Linted([finding_dict(f) for f in report.findings], report.stats, dict(report.counts()))


# --------------------------------------------------------------------------
# Rows
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a patch wrote: acceptable finding offsets and a location regex."""

    offsets: tuple[int, ...]
    location: str  # regular expression, matched with re.fullmatch


def at(offset: int, location: str) -> Target:
    """A target with one acceptable offset."""
    return Target((offset,), location)


#: The QEMU tools a row can name: ``check`` (``qemu-img check``), ``info``
#: (``qemu-img info -U --output=json``: opens the image, no I/O, no key),
#: ``read`` (``qemu-io -r -c COMMAND``), ``write`` (``qemu-io -c COMMAND``),
#: ``rw`` (a read-write ``qemu-io`` open reading 512 bytes) and ``resize``
#: (``qemu-img resize IMG +1M``).  The writing tools run on a copy.
QEMU_TOOLS = ("check", "info", "read", "write", "rw", "resize")


@dataclass(frozen=True)
class QemuExpect:
    """What a QEMU tool does with the patched image (catalogue §2 QEMU column).

    ``returncode`` None means "any" (qemu-io reports I/O errors on stdout
    and still exits 0)."""

    tool: str
    returncode: int | None
    message: str | None = None  # substring of stdout+stderr
    command: str = ""

    def __post_init__(self) -> None:
        assert self.tool in QEMU_TOOLS, self.tool


def check(returncode: int, message: str | None = None) -> QemuExpect:
    """``qemu-img check`` exits ``returncode`` and prints ``message``."""
    return QemuExpect("check", returncode, message)


def refuses(message: str) -> QemuExpect:
    """QEMU cannot open the image (``qemu-img info`` exit 1) and says ``message``."""
    return QemuExpect("info", 1, message)


Patch = Callable[[ib.Qcow2Image], Target]


@dataclass(frozen=True)
class Row:
    """One rule test case: a clean base, a patch that makes one defect, and
    what QEMU says about the result.  The rule's code and severity are the
    registry's (declared once, in the rule)."""

    rule: str
    base: str
    patch: Patch
    qemu: QemuExpect | tuple[QemuExpect, ...] = ()
    variant: str = ""
    #: how many findings the defect gives (None: at least one, one of them at the target)
    count: int | None = 1
    #: rules whose conditions exclude this defect: they must not fire
    absent: tuple[str, ...] = ()
    #: the base that must not fire the rule, when ``base`` fires it as it is
    #: (rows whose "defect" is a property of a real image)
    clean_base: str = ""
    #: the rule only runs with ``deep`` (``qcow2lint check --deep``)
    deep: bool = False
    #: YAML configuration for the row's lint ("" = defaults)
    config: str = ""

    @property
    def severity(self) -> str:
        """The severity the rule's findings carry: the rule's own."""
        return str(registry_rule(self.rule).severity)

    @property
    def code(self) -> str:
        """The rule's code."""
        return str(registry_rule(self.rule).code)

    @property
    def id(self) -> str:
        """pytest id (also the patched image's file name)."""
        return f"{self.rule}[{self.variant}]" if self.variant else self.rule

    @property
    def quiet_base(self) -> str:
        """The base that must not fire the rule."""
        return self.clean_base or self.base

    @property
    def expectations(self) -> tuple[QemuExpect, ...]:
        """The QEMU expectations as a tuple."""
        return self.qemu if isinstance(self.qemu, tuple) else (self.qemu,)


def row_id(row: Row) -> str:
    """pytest id of a row."""
    return row.id


def first_row_per_rule(rows: Iterable[Row]) -> list[Row]:
    """The first row of every rule, for the quiet-on-clean-base test."""
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.rule, row)
    return list(first.values())


def check_table(rows: list[Row], rules: Iterable[str]) -> None:
    """A table covers exactly ``rules``, with unique row ids."""
    assert {row.rule for row in rows} == set(rules), set(rules) ^ {row.rule for row in rows}
    ids = [row.id for row in rows]
    assert len(set(ids)) == len(ids), f"row ids must be unique: {sorted(i for i in ids if ids.count(i) > 1)}"


# --------------------------------------------------------------------------
# Base images
# --------------------------------------------------------------------------


Recipe = Callable[[Path, Path], None]  # (image path, work directory for side files)


def _merge_recipes() -> dict[str, tuple[Recipe, ib.Access]]:
    merged: dict[str, tuple[Recipe, ib.Access]] = {}
    sources: list[tuple[str, Mapping[str, Any]]] = [
        ("baseimages.BASES", {n: (lambda p, w, b=b: b.build(p), b.access) for n, b in baseimages.BASES.items()}),
        ("baseimages.EXTRA", {n: (r, ib.PLAIN) for n, r in baseimages.EXTRA.items()}),
        (
            "snapshot_builders.RECIPES",
            {n: (lambda p, w, r=r: r(p), ib.PLAIN) for n, r in snapshot_builders.RECIPES.items()},
        ),
        ("consistency_builders.RECIPES", {n: (r, ib.PLAIN) for n, r in consistency_builders.RECIPES.items()}),
    ]
    for source, recipes in sources:
        for name, recipe in recipes.items():
            assert name not in merged, f"base {name!r} of {source} is defined twice"
            merged[name] = recipe
    return merged


#: Every named clean base: ``name -> (recipe, how QEMU opens it)``.
RECIPES = _merge_recipes()


class Bases:
    """Builds each named clean base once, on first use, and hands out copies."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._clean: dict[str, ib.CheckResult] = {}
        self._reports: dict[str, Linted] = {}

    def path(self, name: str) -> Path:
        """Path of the (shared, never modified) base ``name``."""
        path = self.root / f"{name}.qcow2"
        if not path.exists():
            tmp = self.root / f"{name}.partial.qcow2"
            RECIPES[name][0](tmp, self.root)
            tmp.rename(path)
        return path

    def access(self, name: str) -> ib.Access:
        """How QEMU tools must open base ``name``."""
        return RECIPES[name][1]

    def copy(self, name: str, directory: Path, filename: str | None = None) -> Path:
        """A private writable copy of base ``name`` in ``directory``."""
        return Path(shutil.copyfile(self.path(name), directory / (filename or f"{name}.qcow2")))

    def qemu_check(self, name: str) -> ib.CheckResult:
        """``qemu-img check`` of the unmodified base (once per session)."""
        if name not in self._clean:
            self._clean[name] = ib.qemu_check(self.path(name), access=self.access(name))
        return self._clean[name]

    def lint(self, name: str) -> Linted:
        """The in-process report (``deep``, every rule on: :data:`PEDANTIC`)
        of the unmodified base (once per session)."""
        if name not in self._reports:
            self._reports[name] = lint(self.path(name), PEDANTIC, deep=True)
        return self._reports[name]


# --------------------------------------------------------------------------
# QEMU
# --------------------------------------------------------------------------


def run_qemu(expect: QemuExpect, path: Path, access: ib.Access, scratch: Path) -> ib.CheckResult:
    """Run the QEMU tool of ``expect`` on ``path`` (the writing tools on a copy in ``scratch``)."""
    if expect.tool in ("write", "rw", "resize"):
        path = Path(shutil.copyfile(path, scratch / f"{expect.tool}-{path.name}"))
    if expect.tool == "check":
        return ib.qemu_check(path, access=access)
    argv: list[str | os.PathLike[str]]
    if expect.tool == "info":
        argv = [ib.QEMU_IMG, "info", "-U", "--output=json", "-f", "qcow2", path]
    elif expect.tool == "read":
        argv = [ib.QEMU_IO, "-r", "-c", expect.command, *access.args(path)]
    elif expect.tool == "write":
        argv = [ib.QEMU_IO, "-c", expect.command, *access.args(path)]
    elif expect.tool == "rw":
        argv = [ib.QEMU_IO, "-c", "read 0 512", "-f", "qcow2", path]
    else:
        argv = [ib.QEMU_IMG, "resize", "-f", "qcow2", path, "+1M"]
    proc = ib.run_tool(argv, check=False)
    return ib.CheckResult(proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------
# Patched images
# --------------------------------------------------------------------------


def file_name(row_id: str) -> str:
    """A file name for a row id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", row_id) + ".qcow2"


class RowImages:
    """Each row's patched image, built once per session (never modified afterwards)."""

    def __init__(self, bases: Bases, root: Path) -> None:
        self.bases = bases
        self.root = root
        self._built: dict[int, tuple[Path, Target]] = {}

    def build(self, row: Row, directory: Path, filename: str | None = None) -> tuple[Path, Target]:
        """A fresh copy of the row's base in ``directory`` with the row's patch applied."""
        path = self.bases.copy(row.base, directory, filename or file_name(row.id))
        return path, row.patch(ib.Qcow2Image(path))

    def get(self, row: Row) -> tuple[Path, Target]:
        """The row's patched image and where its patch wrote (built on first use)."""
        key = id(row)
        if key not in self._built:
            directory = self.root / f"r{len(self._built)}"
            directory.mkdir()
            self._built[key] = self.build(row, directory)
        return self._built[key]

    def lint(self, row: Row, yaml: str | None = None, *, deep: bool | None = None) -> Linted:
        """The row's patched image linted in-process with every rule on
        (:data:`PEDANTIC`, then the row's config or ``yaml``; deep as the row says
        unless given)."""
        path, _ = self.get(row)
        return lint(path, PEDANTIC + (row.config if yaml is None else yaml), deep=row.deep if deep is None else deep)


# --------------------------------------------------------------------------
# Assertions
# --------------------------------------------------------------------------


def assert_points_at(finding: Finding, target: Target) -> None:
    """The finding's offset is one of the patched offsets and its location matches."""
    assert finding["offset"] in target.offsets, (
        f"offset {finding['offset']:#x} not in {[hex(o) for o in target.offsets]}: {finding}"
    )
    assert re.fullmatch(target.location, finding["location"]), (
        f"location {finding['location']!r} does not match /{target.location}/: {finding}"
    )


def assert_row_fires(row: Row, images: RowImages) -> None:
    """(a) The row's defect is reported (once, unless the row says otherwise)
    with the catalogue's severity at the patched structure; the rules the row
    names as absent stay quiet; no rule crashes; a deep-only rule needs deep."""
    _, target = images.get(row)
    report = images.lint(row)
    fired = report.fired
    hits = fired.get(row.rule, [])
    if row.count is None:
        assert hits, f"{row.rule} did not fire:\n{format_findings(report.findings)}"
        hits = [h for h in hits if re.fullmatch(target.location, h["location"])] or hits
    else:
        assert len(hits) == row.count, (
            f"{row.rule} fired {len(hits)} times; all findings:\n{format_findings(report.findings)}"
        )
    finding = hits[0]
    assert finding["severity"] == row.severity, finding
    assert finding["code"] == row.code and finding["message"], finding
    assert_points_at(finding, target)
    for other in row.absent:
        assert other not in fired, f"{other} must not fire here:\n{format_findings(fired[other])}"
    assert "internal-error" not in fired, format_findings(fired["internal-error"])
    if row.deep:  # only deep decompresses
        plain = images.lint(row, deep=False).fired
        assert row.rule not in plain, format_findings(plain[row.rule])


def assert_quiet_on_clean_base(row: Row, bases: Bases) -> None:
    """(b) The unpatched base does not fire the rule (even with deep)."""
    fired = bases.lint(row.quiet_base).fired
    assert row.rule not in fired, format_findings(fired[row.rule])


def assert_disabled_in_config(row: Row, images: RowImages) -> None:
    """(c) ``rules: {NAME: disable}`` silences the rule on the patched image (even with deep)."""
    fired = images.lint(row, disable(row.rule), deep=True).fired
    assert row.rule not in fired, format_findings(fired[row.rule])


def assert_qemu_agrees(row: Row, images: RowImages, scratch: Path) -> None:
    """The recipe really makes the defect: the clean base passes ``qemu-img
    check`` and QEMU reacts to the patched image as the catalogue says."""
    clean = images.bases.qemu_check(row.quiet_base)
    assert clean.returncode == 0, f"base {row.quiet_base} is not clean:\n{clean.output}"
    path, _ = images.get(row)
    for expect in row.expectations:
        result = run_qemu(expect, path, images.bases.access(row.base), scratch)
        if expect.returncode is not None:
            assert result.returncode == expect.returncode, f"{expect}:\n{result.output}"
        if expect.message is not None:
            assert expect.message in result.output, f"{expect}:\n{result.output}"


def assert_all_found(report: Linted, expected: Mapping[str, Target]) -> None:
    """Each rule of ``expected`` fired once, at its target (several defects in one image)."""
    fired = report.fired
    missing = set(expected) - set(fired)
    assert not missing, f"missing {missing}; got:\n{format_findings(report.findings)}"
    for rule, target in expected.items():
        assert len(fired[rule]) == 1, format_findings(fired[rule])
        assert_points_at(fired[rule][0], target)


# --------------------------------------------------------------------------
# The differential test's report (tests/test_differential.py)
# --------------------------------------------------------------------------


#: The user property that carries a case's verdict to the summary.
DIFFERENTIAL_KEY = "qcow2lint-differential"


def differential_summary(verdicts: list[dict[str, str]]) -> str:
    """How many images were compared, agreed, skipped (and why), and every
    disagreement (for the end of the run)."""
    kinds = Counter(v["kind"] for v in verdicts)
    by_source = Counter(v["source"] for v in verdicts)
    reasons = Counter(v["reason"] for v in verdicts if v["reason"])
    lines = [
        "differential test (qcow2lint stats vs qemu-img check --output=json):",
        f"  images: {len(verdicts)} ({', '.join(f'{s} {n}' for s, n in sorted(by_source.items()))})",
        f"  compared, all figures equal (check exit 0/3): {kinds['compared']}",
        f"  corrupt on both sides, all figures equal (check exit 2): {kinds['corrupt-agree']}",
        f"  disagreements: {kinds['disagree']}",
        *(f"  qemu-img check run{how}: {n}" for how, n in Counter(v["qemu_how"] for v in verdicts).items() if how),
        f"  skipped: {kinds['skipped'] + kinds['build-failed']}",
        *(f"    {n} x {reason}" for reason, n in reasons.most_common()),
        *(f"  DISAGREEMENT {v['disagreement']}" for v in verdicts if v["disagreement"]),
    ]
    return "\n".join(lines)
