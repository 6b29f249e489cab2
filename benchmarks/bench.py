#!/usr/bin/env python3
"""Benchmark qcow2lint against its references, side by side in one run.

Standalone script (not a test), standard library only.  Each scenario
compares a qcow2lint command with a reference command:

* large images (``prealloc-1t``, ``scattered-10g``, ``prealloc-2t``):
  ``qcow2lint check IMG`` against ``qemu-img check IMG``;
* ``map-1t``: ``qcow2lint map IMG -o IMG.map.html`` of the ``prealloc-1t``
  image against ``qemu-img check IMG`` (target: at most 3 times as long);
* ``startup-version``: ``qcow2lint --version`` against ``python -c pass``;
* ``startup-1g``: ``qcow2lint check`` of a fresh 1 GiB image against
  ``python -c "import numpy"`` (and ``qemu-img check``, for information);
* ``batch``: one ``qcow2lint check DIR`` of 100 small images against 100
  ``qemu-img check`` calls.

Images are built once in a work directory and reused while their recipe
marker matches.  For each scenario every command runs once untimed (a
warm-up that fills the page cache and the .pyc caches, and whose output is
checked), then the commands run alternately for a number of rounds; wall
time and the child's peak RSS are recorded.  The script prints each run,
a table per scenario, a Markdown summary and PASS/FAIL per target.

Example::

    python benchmarks/bench.py                     # every scenario
    python benchmarks/bench.py --scenario startup --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
MB = 1_000_000  # RSS is reported in MB = 10^6 bytes

DEFAULT_WORKDIR = Path("/tmp/qcow2lint-bench")
DEFAULT_QCOW2LINT = "qcow2lint"
DEFAULT_ROUNDS = 5

# Exit codes of this script.
EXIT_OK = 0  # everything ran and all evaluated targets passed
EXIT_TARGETS = 1  # a target failed, a tool run failed or a scenario was aborted
EXIT_USAGE = 2  # argparse error
EXIT_SETUP = 3  # could not build an image / tool missing

# Scattered scenario parameters.
SCATTER_SIZE = 10 * GIB
SCATTER_CHUNK = 4 * KIB
SCATTER_COUNT = 262_144  # 1 GiB of data in 4 KiB pieces
SCATTER_SEED = 20240601

# Batch scenario parameters.
BATCH_COUNT = 100
BATCH_IMAGE_SIZE = "64M"

# The variable this script removes from its children's environment.
NO_BYTECODE_VAR = "PYTHONDONTWRITEBYTECODE"


class BenchError(Exception):
    """Fatal setup error (image build failed, tool missing, ...)."""


# --------------------------------------------------------------------------
# Image building
# --------------------------------------------------------------------------


def run_checked(cmd: Sequence[str]) -> None:
    """Run *cmd*, raising :class:`BenchError` with its stderr on failure."""
    proc = subprocess.run(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"command failed (exit {proc.returncode}): {shlex.join(cmd)}\n{proc.stderr.strip()}")


def build_prealloc(img: Path, size: str) -> None:
    """Create a metadata-preallocated qcow2 image of *size* at *img*."""
    run_checked(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", str(img), size])


def build_fresh(img: Path) -> None:
    """Create a fresh (empty) 1 GiB qcow2 image at *img*."""
    run_checked(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G"])


def build_scattered(img: Path) -> None:
    """Create a 10 GiB qcow2 (4 KiB clusters) with 1 GiB written scattered.

    A sparse raw file gets SCATTER_COUNT non-zero pseudo-random 4 KiB chunks
    at distinct random 4 KiB-aligned offsets (fixed seed); it is then
    converted with ``qemu-img convert`` and deleted.
    """
    raw = img.with_name(img.name + ".raw.tmp")
    rng = random.Random(SCATTER_SEED)
    nslots = SCATTER_SIZE // SCATTER_CHUNK
    slots = sorted(rng.sample(range(nslots), SCATTER_COUNT))
    try:
        fd = os.open(raw, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, SCATTER_SIZE)
            for slot in slots:
                # First byte in 1..255 guarantees the chunk is non-zero, so
                # qemu-img convert cannot treat it as a hole.
                chunk = bytes((rng.randrange(1, 256),)) + rng.randbytes(SCATTER_CHUNK - 1)
                os.pwrite(fd, chunk, slot * SCATTER_CHUNK)
        finally:
            os.close(fd)
        run_checked(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", str(raw), str(img)])
    finally:
        raw.unlink(missing_ok=True)


def build_batch(directory: Path) -> None:
    """Create BATCH_COUNT small images (64 MiB, 64 KiB written) in *directory*."""
    directory.mkdir()
    for index in range(BATCH_COUNT):
        img = directory / f"img{index:03}.qcow2"
        run_checked(["qemu-img", "create", "-q", "-f", "qcow2", str(img), BATCH_IMAGE_SIZE])
        run_checked(["qemu-io", "-c", f"write -P {index % 256} 0 64k", str(img)])


@dataclass(frozen=True)
class Recipe:
    """How to build one benchmark file (or directory) in the work directory."""

    filename: str
    recipe: dict[str, Any]  # stored in the marker; a change forces a rebuild
    builder: Callable[[Path], None]


@dataclass
class ImageInfo:
    """Where an image lives and how it was built."""

    path: str
    reused: bool
    build_seconds: float | None
    apparent_bytes: int
    disk_bytes: int


def run_builder(builder: Callable[[Path], None], path: Path) -> None:
    """Run *builder* in a forked child process.

    Keeps this process's memory small: children spawned later inherit its
    RSS into their ``ru_maxrss`` (see :func:`reset_peak_rss`).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            builder(path)
        except BaseException as exc:  # noqa: BLE001 - report and exit
            print(f"error: {exc}", file=sys.stderr)
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)  # pylint: disable=protected-access
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise BenchError(f"building {path} failed (exit {code})")


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree, if present."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def disk_usage(path: Path) -> tuple[int, int]:
    """(apparent bytes, bytes on disk) of a file or of a directory's files."""
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), sum(s.st_blocks * 512 for s in stats)


def ensure_image(name: str, recipe: Recipe, workdir: Path, rebuild: bool) -> ImageInfo:
    """Build *recipe* in *workdir* unless a matching one already exists."""
    img = workdir / recipe.filename
    marker = img.with_name(img.name + ".recipe.json")
    build_seconds: float | None = None
    reused = False
    if not rebuild and img.exists() and marker.exists():
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("recipe") == recipe.recipe:
            reused = True
            build_seconds = data.get("build_seconds")
    if not reused:
        marker.unlink(missing_ok=True)
        remove_path(img)
        tmp = img.with_name(img.name + ".tmp")
        remove_path(tmp)
        print(f"[build] {name}: {img}", flush=True)
        t0 = time.perf_counter()
        try:
            run_builder(recipe.builder, tmp)
        except BaseException:
            remove_path(tmp)
            raise
        build_seconds = time.perf_counter() - t0
        os.replace(tmp, img)
        marker.write_text(
            json.dumps(
                {
                    "recipe": recipe.recipe,
                    "build_seconds": build_seconds,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                indent=2,
            )
        )
        print(f"[build] {name}: done in {build_seconds:.1f} s", flush=True)
    else:
        bs = f"{build_seconds:.1f} s" if build_seconds is not None else "?"
        print(f"[build] {name}: reusing {img} (originally built in {bs})", flush=True)
    apparent, disk = disk_usage(img)
    return ImageInfo(str(img), reused, build_seconds, apparent, disk)


# --------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One side of a comparison: commands run one after another, timed together."""

    label: str
    cmds: tuple[tuple[str, ...], ...]
    ok_codes: frozenset[int]
    is_qcow2lint: bool = False  # its output must be non-empty

    def shell(self) -> str:
        """The commands as one readable line."""
        if len(self.cmds) == 1:
            return shlex.join(self.cmds[0])
        return f"{len(self.cmds)} calls: {shlex.join(self.cmds[0])}; ..."


@dataclass(frozen=True)
class Comparison:
    """What a scenario runs: qcow2lint, its reference, and extra commands
    shown for information only."""

    subject: Entry
    reference: Entry
    extras: tuple[Entry, ...] = ()

    def entries(self) -> tuple[Entry, ...]:
        """Every command, in the order each round runs them."""
        return (self.reference, self.subject, *self.extras)


@dataclass(frozen=True)
class Setup:
    """The commands the scenarios are built from."""

    lint: tuple[str, ...]  # the qcow2lint command, without a subcommand
    python: str  # the interpreter qcow2lint runs on


OK_QEMU = frozenset({0})
OK_LINT = frozenset({0, 1})  # 1 = findings
OK_PYTHON = frozenset({0})


def qemu_entry(img: Path) -> Entry:
    """``qemu-img check IMG``."""
    return Entry("qemu-img check", (("qemu-img", "check", str(img)),), OK_QEMU)


def lint_check_entry(setup: Setup, target: Path, label: str = "qcow2lint check") -> Entry:
    """``qcow2lint check TARGET``."""
    return Entry(label, ((*setup.lint, "check", str(target)),), OK_LINT, is_qcow2lint=True)


def large_image(setup: Setup, img: Path) -> Comparison:
    """``qcow2lint check IMG`` against ``qemu-img check IMG``."""
    return Comparison(lint_check_entry(setup, img), qemu_entry(img))


def map_page(setup: Setup, img: Path) -> Comparison:
    """``qcow2lint map IMG -o IMG.html`` against ``qemu-img check IMG`` (and
    ``qcow2lint check IMG`` for information): the page of the image."""
    page = img.with_name(img.name + ".map.html")
    return Comparison(
        Entry("qcow2lint map -o HTML", ((*setup.lint, "map", str(img), "-o", str(page)),), frozenset({0})),
        qemu_entry(img),
        (lint_check_entry(setup, img),),
    )


def startup_version(setup: Setup, _: Path | None) -> Comparison:
    """``qcow2lint --version`` against ``python -c pass``."""
    return Comparison(
        Entry("qcow2lint --version", ((*setup.lint, "--version"),), OK_LINT, is_qcow2lint=True),
        Entry("python -c pass", ((setup.python, "-c", "pass"),), OK_PYTHON),
    )


def startup_check(setup: Setup, img: Path) -> Comparison:
    """``qcow2lint check`` of a fresh image against ``python -c "import numpy"``."""
    return Comparison(
        lint_check_entry(setup, img),
        Entry("python -c 'import numpy'", ((setup.python, "-c", "import numpy"),), OK_PYTHON),
        (qemu_entry(img),),
    )


def batch(setup: Setup, directory: Path) -> Comparison:
    """One ``qcow2lint check DIR`` against one ``qemu-img check`` per image."""
    images = sorted(directory.glob("*.qcow2"))
    return Comparison(
        lint_check_entry(setup, directory, "qcow2lint check DIR (one call)"),
        Entry(
            f"qemu-img check x{len(images)}",
            tuple(("qemu-img", "check", "-q", str(p)) for p in images),
            OK_QEMU,
        ),
    )


@dataclass(frozen=True)
class Scenario:
    """A named comparison and the file it needs (if any)."""

    name: str
    description: str
    image: Recipe | None
    comparison: Callable[[Setup, Any], Comparison]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "prealloc-1t",
            "qemu-img create -f qcow2 -o preallocation=metadata 1T (~16.7 M L2 entries)",
            Recipe(
                "prealloc-1t.qcow2", {"kind": "prealloc", "size": "1T", "version": 1}, lambda p: build_prealloc(p, "1T")
            ),
            large_image,
        ),
        Scenario(
            "map-1t",
            "qcow2lint map -o HTML of the prealloc-1t image, against qemu-img check",
            Recipe(
                "prealloc-1t.qcow2", {"kind": "prealloc", "size": "1T", "version": 1}, lambda p: build_prealloc(p, "1T")
            ),
            map_page,
        ),
        Scenario(
            "scattered-10g",
            "10 GiB, 4 KiB clusters, 1 GiB written in 262144 scattered 4 KiB pieces",
            Recipe(
                "scattered-10g.qcow2",
                {
                    "kind": "scattered",
                    "size": SCATTER_SIZE,
                    "chunk": SCATTER_CHUNK,
                    "count": SCATTER_COUNT,
                    "seed": SCATTER_SEED,
                    "cluster_size": 4096,
                    "version": 1,
                },
                build_scattered,
            ),
            large_image,
        ),
        Scenario(
            "prealloc-2t",
            "qemu-img create -f qcow2 -o preallocation=metadata 2T (~33.5 M L2 entries)",
            Recipe(
                "prealloc-2t.qcow2", {"kind": "prealloc", "size": "2T", "version": 1}, lambda p: build_prealloc(p, "2T")
            ),
            large_image,
        ),
        Scenario(
            "startup-version",
            "start-up: qcow2lint --version against python -c pass (same interpreter)",
            None,
            startup_version,
        ),
        Scenario(
            "startup-1g",
            "start-up: qcow2lint check of a fresh 1 GiB image against python -c 'import numpy'",
            Recipe("fresh-1g.qcow2", {"kind": "fresh", "size": "1G", "version": 1}, build_fresh),
            startup_check,
        ),
        Scenario(
            "batch",
            f"{BATCH_COUNT} small images (64 MiB, 64 KiB written): one qcow2lint check DIR "
            f"against {BATCH_COUNT} qemu-img check calls",
            Recipe(
                f"batch-{BATCH_COUNT}",
                {"kind": "batch", "count": BATCH_COUNT, "size": BATCH_IMAGE_SIZE, "written": "64k", "version": 1},
                build_batch,
            ),
            batch,
        ),
    )
}

GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(SCENARIOS),
    "large": ("prealloc-1t", "scattered-10g", "prealloc-2t"),
    "map": ("map-1t",),
    "startup": ("startup-version", "startup-1g"),
}


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


def child_environment() -> dict[str, str]:
    """This process's environment without PYTHONDONTWRITEBYTECODE.

    A user's install has .pyc files; with the variable set, every run of
    an editable install would compile its modules again.
    """
    env = dict(os.environ)
    env.pop(NO_BYTECODE_VAR, None)
    return env


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to its current RSS (Linux).

    The child's ``ru_maxrss`` includes the memory it had *before* exec,
    which (vfork/fork) is this Python process's high-water mark.  Writing
    ``5`` to ``/proc/self/clear_refs`` keeps e.g. image building from
    inflating the children's figures.  Returns False if unsupported.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measured:
    """What one timed execution of an entry's commands gave."""

    wall_s: float
    maxrss_kib: int  # the largest among the commands
    exit_codes: list[int]  # one per command; negative = killed by that signal
    output: bytes  # stdout and stderr of every command, together
    maxrss_kib_each: list[int] = field(default_factory=list)  # one per command


def measure(cmds: Sequence[Sequence[str]], env: dict[str, str]) -> Measured:
    """Run *cmds* one after another; wall time covers all of them.

    Output goes to an unnamed temporary file (the same for every tool),
    read back after the clock stops.  ``os.wait4`` gives the rusage of
    exactly each child.
    """
    reset_peak_rss()
    codes: list[int] = []
    rss: list[int] = []
    with tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        for cmd in cmds:
            proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env)
            _, status, rusage = os.wait4(proc.pid, 0)
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code  # already reaped; keep Popen from waiting again
            codes.append(code)
            rss.append(int(rusage.ru_maxrss))
        wall = time.perf_counter() - t0
        out.seek(0)
        output = out.read()
    return Measured(wall, max(rss), codes, output, rss)


def problem_with(entry: Entry, result: Measured) -> str | None:
    """Why *result* is not a valid run of *entry*, or None if it is.

    An uncaught Python exception exits with 1, which qcow2lint also uses
    for "findings": the traceback in the output is what tells them apart.
    """
    problems = []
    if b"Traceback" in result.output:
        problems.append("the output contains a Python traceback")
    if entry.is_qcow2lint and not result.output.strip():
        problems.append("the output is empty")
    bad = [c for c in result.exit_codes if c not in entry.ok_codes]
    if bad:
        problems.append(f"exit code {bad[0]} (valid: {', '.join(map(str, sorted(entry.ok_codes)))})")
    return "; ".join(problems) or None


def output_tail(output: bytes, lines: int = 15) -> str:
    """The last *lines* lines of *output*, decoded, control characters escaped."""
    text = output.decode("utf-8", errors="replace")
    tail = text.splitlines()[-lines:]
    return "\n".join("      | " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in line) for line in tail)


def rss_floor_kib(env: dict[str, str]) -> int | None:
    """Peak RSS (KiB) reported for ``true`` spawned the same way.

    This is the measurement floor: a tool reported at (about) this value
    really used this much or less.
    """
    exe = shutil.which("true")
    if exe is None:
        return None
    return min(measure([[exe]], env).maxrss_kib for _ in range(3))


def fmt_rss(mb: float, floor_kib: int | None) -> str:
    """Format an RSS in MB, as ``<=X`` when within 1 MiB of the floor."""
    if floor_kib is not None and mb * MB <= (floor_kib + 1024) * KIB:
        return f"<={mb:.1f}"
    return f"{mb:.1f}"


@dataclass
class Run:
    """One measured execution of an entry."""

    tool: str
    round: int  # 0 = warm-up
    wall_s: float
    maxrss_kib: int
    exit_codes: list[int]
    ok: bool
    problem: str | None
    maxrss_kib_each: list[int]  # one per command (the batch runs 100)


@dataclass
class ToolStats:
    """Aggregated timed runs of one entry on one scenario."""

    tool: str
    command: str
    median_wall_s: float
    min_wall_s: float
    max_wall_s: float
    median_rss_mb: float
    peak_rss_mb: float
    all_ok: bool


def summarize(entry: Entry, runs: list[Run]) -> ToolStats:
    """Aggregate the timed (non-warm-up) *runs* of *entry*."""
    rs = [r for r in runs if r.tool == entry.label and r.round > 0]
    walls = [r.wall_s for r in rs]
    rss = [r.maxrss_kib * KIB / MB for r in rs]
    return ToolStats(
        entry.label,
        entry.shell(),
        statistics.median(walls),
        min(walls),
        max(walls),
        statistics.median(rss),
        max(rss),
        all(r.ok for r in rs),
    )


@dataclass
class ScenarioResult:
    """Everything measured for one scenario."""

    scenario: str
    description: str
    subject: str  # label of the qcow2lint entry
    reference: str  # label of what it is compared with
    image: ImageInfo | None
    aborted: str | None = None  # why the scenario stopped after its warm-up
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, ToolStats] = field(default_factory=dict)
    time_ratio: float | None = None  # subject median wall / reference median wall
    time_ratio_min: float | None = None  # same with min walls (informational)
    rss_ratio: float | None = None  # subject peak RSS / reference peak RSS

    @property
    def valid(self) -> bool:
        """Ran to the end, every run valid."""
        return self.aborted is None and all(s.all_ok for s in self.stats.values())


def run_scenario(
    scn: Scenario, comp: Comparison, image: ImageInfo | None, rounds: int, env: dict[str, str], floor_kib: int | None
) -> ScenarioResult:
    """Warm up (checking the output), then run the entries alternately."""
    res = ScenarioResult(scn.name, scn.description, comp.subject.label, comp.reference.label, image)
    entries = comp.entries()

    def one(entry: Entry, rnd: int) -> Run:
        """Measure one run of *entry* (round 0 = warm-up) and log it."""
        result = measure(entry.cmds, env)
        problem = problem_with(entry, result)
        run = Run(
            entry.label,
            rnd,
            result.wall_s,
            result.maxrss_kib,
            result.exit_codes,
            problem is None,
            problem,
            result.maxrss_kib_each,
        )
        res.runs.append(run)
        tag = "warm-up" if rnd == 0 else f"round {rnd}/{rounds}"
        codes = fmt_codes(result.exit_codes)
        flag = "" if problem is None else f"  <-- FAILURE: {problem}"
        rss = fmt_rss(result.maxrss_kib * KIB / MB, floor_kib)
        print(f"  {tag:>12}  {entry.label:<32} {result.wall_s:8.3f} s {rss:>9} MB  exit {codes}{flag}", flush=True)
        if problem is not None and rnd == 0:
            res.aborted = f"warm-up run of {entry.label!r} is not a valid run: {problem}"
            print(f"error: {scn.name}: {res.aborted}; scenario aborted.", flush=True)
            print(f"    command: {entry.shell()}", flush=True)
            print("    last lines of its output:" if result.output.strip() else "    (no output)", flush=True)
            if result.output.strip():
                print(output_tail(result.output), flush=True)
        return run

    print(
        f"[run] {scn.name}: 1 untimed warm-up run of each command, then {rounds} timed round(s), alternating",
        flush=True,
    )
    for entry in entries:
        if not one(entry, 0).ok:
            return res
    for rnd in range(1, rounds + 1):
        for entry in entries:
            one(entry, rnd)
    for entry in entries:
        res.stats[entry.label] = summarize(entry, res.runs)
    subj, ref = res.stats[comp.subject.label], res.stats[comp.reference.label]
    if ref.median_wall_s > 0:
        res.time_ratio = subj.median_wall_s / ref.median_wall_s
    if ref.min_wall_s > 0:
        res.time_ratio_min = subj.min_wall_s / ref.min_wall_s
    if ref.peak_rss_mb > 0:
        res.rss_ratio = subj.peak_rss_mb / ref.peak_rss_mb
    return res


# --------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------


def lint_stats(res: ScenarioResult) -> ToolStats:
    """The qcow2lint figures of a scenario."""
    return res.stats[res.subject]


def scaling_2t_1t(results: dict[str, ScenarioResult]) -> float:
    """qcow2lint's median time on prealloc-2t over its median on prealloc-1t."""
    return lint_stats(results["prealloc-2t"]).median_wall_s / lint_stats(results["prealloc-1t"]).median_wall_s


@dataclass(frozen=True)
class TargetSpec:
    """A target: *value* computed from the named scenarios must be <= *limit*."""

    name: str
    scenarios: tuple[str, ...]
    value: Callable[[dict[str, ScenarioResult]], float | None]
    limit: float
    unit: str  # "x" for ratios, " MB" for sizes


TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec(
        "prealloc-1t: time qcow2lint / qemu-img (medians)",
        ("prealloc-1t",),
        lambda r: r["prealloc-1t"].time_ratio,
        0.6,
        "x",
    ),
    TargetSpec(
        "scattered-10g: time qcow2lint / qemu-img (medians)",
        ("scattered-10g",),
        lambda r: r["scattered-10g"].time_ratio,
        0.6,
        "x",
    ),
    TargetSpec(
        "map-1t: time qcow2lint map -o HTML / qemu-img check (medians)",
        ("map-1t",),
        lambda r: r["map-1t"].time_ratio,
        3.0,
        "x",
    ),
    TargetSpec(
        "prealloc-1t: qcow2lint peak RSS",
        ("prealloc-1t",),
        lambda r: lint_stats(r["prealloc-1t"]).peak_rss_mb,
        120.0,
        " MB",
    ),
    TargetSpec(
        "prealloc-2t: peak RSS qcow2lint / qemu-img",
        ("prealloc-2t",),
        lambda r: r["prealloc-2t"].rss_ratio,
        1.5,
        "x",
    ),
    TargetSpec(
        "qcow2lint time prealloc-2t / prealloc-1t (medians)",
        ("prealloc-1t", "prealloc-2t"),
        scaling_2t_1t,
        2.2,
        "x",
    ),
    TargetSpec(
        "startup-version: time qcow2lint --version / python -c pass",
        ("startup-version",),
        lambda r: r["startup-version"].time_ratio,
        1.5,
        "x",
    ),
    TargetSpec(
        "startup-1g: time qcow2lint check fresh 1 GiB / python -c 'import numpy'",
        ("startup-1g",),
        lambda r: r["startup-1g"].time_ratio,
        1.5,
        "x",
    ),
)


@dataclass
class Target:
    """One evaluated target."""

    name: str
    value: float | None
    limit: float
    unit: str
    passed: bool
    note: str = ""


def evaluate_targets(results: dict[str, ScenarioResult]) -> list[Target]:
    """Evaluate the targets whose scenarios were all run."""
    targets = []
    for spec in TARGETS:
        if not all(name in results for name in spec.scenarios):
            continue
        invalid = [name for name in spec.scenarios if not results[name].valid]
        if invalid:
            targets.append(
                Target(spec.name, None, spec.limit, spec.unit, False, f"{', '.join(invalid)}: aborted or a run failed")
            )
            continue
        value = spec.value(results)
        passed = value is not None and value <= spec.limit
        targets.append(Target(spec.name, value, spec.limit, spec.unit, passed))
    return targets


# --------------------------------------------------------------------------
# Environment and reporting
# --------------------------------------------------------------------------


def first_line(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    """First line of *cmd*'s output, or an error marker."""
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=env)
    except OSError as exc:
        return f"<{exc}>"
    out = proc.stdout.strip() or proc.stderr.strip()
    return out.splitlines()[0] if out else "<no output>"


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform info."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, if the system has them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def fmt_load(load: list[float] | None) -> str:
    """Load averages as ``0.30 1.09 1.72 (1, 5, 15 min)``."""
    return "n/a" if load is None else f"{' '.join(f'{x:.2f}' for x in load)} (1, 5, 15 min)"


def lint_interpreter(lint: Sequence[str]) -> str:
    """The Python interpreter the qcow2lint command runs on.

    ``python -m qcow2lint`` names it; an installed ``qcow2lint`` script
    names it on its ``#!`` line.  Falls back to this script's interpreter.
    """
    exe = shutil.which(lint[0])
    if exe is None:
        return sys.executable
    if Path(exe).name.startswith("python"):
        return exe
    try:
        with open(exe, "rb") as fh:
            line = fh.readline(512).decode("utf-8", errors="replace").strip()
    except OSError:
        return sys.executable
    if line.startswith("#!"):
        words = line[2:].split()
        if words and Path(words[0]).name.startswith("python"):
            return words[0]
    return sys.executable


def environment(setup: Setup, env: dict[str, str]) -> dict[str, Any]:
    """Describe the date, the machine and the tools' versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": cpu_model(),
        "cores_usable": usable,
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "load_average_start": load_average(),
        "qemu_img_version": first_line(["qemu-img", "--version"]),
        "qcow2lint_path": shutil.which(setup.lint[0]),
        "qcow2lint_version": first_line([*setup.lint, "--version"], env),
        "python": setup.python,
        "python_version": first_line([setup.python, "--version"], env),
        "bench_python_version": platform.python_version(),
        "pythondontwritebytecode_in_this_shell": NO_BYTECODE_VAR in os.environ,
        "pythondontwritebytecode_in_children": False,
    }


def print_header(info: dict[str, Any], setup: Setup, args: argparse.Namespace) -> None:
    """Print when, where and how the figures are measured."""
    print("qcow2lint benchmark")
    print(f"date:      {info['date_utc']}")
    print(
        f"machine:   {info['cpu_model']}, {info['cores_usable']} usable cores "
        f"({info['cpu_count']} online), kernel {info['kernel']}"
    )
    print(f"load:      {fmt_load(info['load_average_start'])} at start")
    print(f"qemu-img:  {info['qemu_img_version']}")
    print(f"qcow2lint: {shlex.join(setup.lint)} -> {info['qcow2lint_path']} ({info['qcow2lint_version']})")
    print(f"python:    {setup.python} ({info['python_version']}): qcow2lint's interpreter, used for the references")
    print(f"scenarios: {', '.join(args.scenario)}; {args.rounds} timed round(s); workdir {args.workdir}")
    shell_note = "this shell sets it" if info["pythondontwritebytecode_in_this_shell"] else "this shell does not set it"
    print(
        f"method:    children run with {NO_BYTECODE_VAR} removed from their environment ({shell_note}),\n"
        "           so they load .pyc files as a user's install does; per scenario, 1 untimed warm-up run of\n"
        "           each command (its output checked: exit code, no traceback, qcow2lint output not empty),\n"
        "           then alternating timed rounds; figures are medians; peak RSS is the largest ru_maxrss\n"
        "           (os.wait4) over the timed runs; wall = time.perf_counter around the child(ren);\n"
        "           RSS in MB = 10^6 bytes; children run in the work directory (no configuration file)."
    )
    print(flush=True)


def fmt_codes(codes: list[int]) -> str:
    """Compact exit-code list: ``0``, ``0x100`` or ``0,1,0``."""
    if len(codes) == 1:
        return str(codes[0])
    if codes and all(c == codes[0] for c in codes):
        return f"{codes[0]}x{len(codes)}"
    return ",".join(str(c) for c in codes)


def fmt_ratio(value: float | None) -> str:
    """A ratio with two decimals, or n/a."""
    return "n/a" if value is None else f"{value:.2f}"


def fmt_rss_ratio(res: ScenarioResult, floor_kib: int | None) -> str:
    """The peak RSS ratio, marked when a side is at the measurement floor.

    A figure at the floor is an upper bound, so the ratio is a lower bound
    (reference at the floor), an upper bound (qcow2lint at the floor), or
    unknown (both).
    """
    lint_low = fmt_rss(res.stats[res.subject].peak_rss_mb, floor_kib).startswith("<=")
    ref_low = fmt_rss(res.stats[res.reference].peak_rss_mb, floor_kib).startswith("<=")
    if res.rss_ratio is None or (lint_low and ref_low):
        return "n/a"
    return (">=" if ref_low else "<=" if lint_low else "") + f"{res.rss_ratio:.2f}"


def fmt_size(size: int) -> str:
    """A file size in GiB, or in MB below 1 GiB."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / MB:.1f} MB"


def print_table(res: ScenarioResult, floor_kib: int | None) -> None:
    """Print the side-by-side table for one scenario."""
    print()
    print(f"== {res.scenario}: {res.description}")
    if res.image is not None:
        img = res.image
        print(f"   {img.path}: {fmt_size(img.apparent_bytes)} apparent size, {fmt_size(img.disk_bytes)} on disk")
    if res.aborted is not None:
        print(f"   ABORTED: {res.aborted}")
        return
    hdr = f"   {'command':<34}{'median s':>10}{'min s':>10}{'max s':>10}{'med RSS MB':>12}{'peak RSS MB':>13}  status"
    print(hdr)
    print("   " + "-" * (len(hdr) - 3))
    for s in res.stats.values():
        print(
            f"   {s.tool:<34}{s.median_wall_s:>10.3f}{s.min_wall_s:>10.3f}{s.max_wall_s:>10.3f}"
            f"{fmt_rss(s.median_rss_mb, floor_kib):>12}{fmt_rss(s.peak_rss_mb, floor_kib):>13}"
            f"  {'ok' if s.all_ok else 'FAILURE'}"
        )
    print(
        f"   ratio {res.subject} / {res.reference}: time {fmt_ratio(res.time_ratio)} "
        f"(min walls {fmt_ratio(res.time_ratio_min)}), peak RSS {fmt_rss_ratio(res, floor_kib)}"
    )


def print_summary(results: dict[str, ScenarioResult], floor_kib: int | None) -> None:
    """One Markdown row per scenario: reference and qcow2lint side by side."""
    print()
    print("== summary (medians of the timed rounds; peak RSS over them)")
    print()
    print("| scenario | reference | reference s | qcow2lint s | time ratio | reference MB | qcow2lint MB | RSS ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for res in results.values():
        if res.aborted is not None:
            print(f"| `{res.scenario}` | {res.reference} | aborted | | | | | |")
            continue
        ref, lint = res.stats[res.reference], res.stats[res.subject]
        print(
            f"| `{res.scenario}` | {res.reference} | {ref.median_wall_s:.3f} | {lint.median_wall_s:.3f}"
            f" | {fmt_ratio(res.time_ratio)} | {fmt_rss(ref.peak_rss_mb, floor_kib)}"
            f" | {fmt_rss(lint.peak_rss_mb, floor_kib)} | {fmt_rss_ratio(res, floor_kib)} |"
        )


def print_targets(targets: list[Target]) -> None:
    """PASS or FAIL per evaluated target."""
    print()
    print("== targets")
    for t in targets:
        digits = 1 if t.unit == " MB" else 2
        value = "n/a" if t.value is None else f"{t.value:.{digits}f}{t.unit}"
        note = f"  ({t.note})" if t.note else ""
        print(f"   {'PASS' if t.passed else 'FAIL'}  {t.name}: {value} (target <= {t.limit:g}{t.unit}){note}")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    scen_help = "\n".join(f"  {s.name}: {s.description}" for s in SCENARIOS.values())
    group_help = "\n".join(f"  {g}: {', '.join(names)}" for g, names in GROUPS.items())
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"scenarios:\n{scen_help}\ngroups:\n{group_help}\n\n"
            "exit codes: 0 = all runs valid and all evaluated targets PASS; 1 = a target FAILed,\n"
            "a run was not valid or a scenario was aborted; 2 = usage error; 3 = setup error\n"
            "(image build failed, tool missing)."
        ),
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=[*SCENARIOS, *GROUPS],
        metavar="NAME",
        help="scenario or group to run (repeatable; default all)",
    )
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"where images are kept (default {DEFAULT_WORKDIR})"
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild images even if a matching one exists")
    p.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"timed rounds per command (default {DEFAULT_ROUNDS})"
    )
    p.add_argument(
        "--qcow2lint",
        default=DEFAULT_QCOW2LINT,
        metavar="CMD",
        help=f"qcow2lint command, split with shlex; 'check IMG' or '--version' is added (default '{DEFAULT_QCOW2LINT}')",
    )
    p.add_argument(
        "--python",
        metavar="PY",
        help="interpreter for the python -c references (default: the one qcow2lint runs on, from its #! line)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write every raw figure to FILE as JSON")
    p.add_argument("--build-only", action="store_true", help="only build (or verify) the images, do not benchmark")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    try:
        args.lint_argv = shlex.split(args.qcow2lint)
    except ValueError as exc:
        p.error(f"--qcow2lint: {exc}")
    if not args.lint_argv:
        p.error("--qcow2lint is empty")
    names = [n for chosen in (args.scenario or ["all"]) for n in GROUPS.get(chosen, (chosen,))]
    args.scenario = list(dict.fromkeys(names))  # de-duplicated, in order
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    env = child_environment()
    setup = Setup(tuple(args.lint_argv), args.python or lint_interpreter(args.lint_argv))

    needed = {"qemu-img"}
    if "batch" in args.scenario:
        needed.add("qemu-io")
    if not args.build_only:
        needed.add(args.lint_argv[0])
    for exe in sorted(needed):
        if shutil.which(exe) is None:
            print(f"error: command not found: {exe}", file=sys.stderr)
            return EXIT_SETUP
    # The children run in the work directory (see below): a relative command
    # or work directory must not change meaning.
    args.workdir = args.workdir.resolve()
    if not args.build_only:
        args.lint_argv[0] = os.path.abspath(shutil.which(args.lint_argv[0]) or args.lint_argv[0])
        setup = Setup(tuple(args.lint_argv), setup.python)

    info = environment(setup, env)
    print_header(info, setup, args)

    images: dict[str, ImageInfo] = {}
    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
        for name in args.scenario:
            recipe = SCENARIOS[name].image
            if recipe is not None:
                images[name] = ensure_image(name, recipe, args.workdir, args.rebuild)
    except (BenchError, OSError) as exc:
        print(f"error: building images failed: {exc}", file=sys.stderr)
        return EXIT_SETUP
    if args.build_only:
        return EXIT_OK

    floor_kib = rss_floor_kib(env)
    info["rss_floor_kib"] = floor_kib
    info["peak_rss_reset"] = reset_peak_rss()
    if floor_kib is not None:
        print(
            f"\nRSS floor: `true` spawned the same way reports {floor_kib * KIB / MB:.1f} MB (ru_maxrss counts the\n"
            "pre-exec memory shared with this Python process); figures shown as <=X are at that floor."
        )
    print()

    # In the work directory no qcow2lint configuration is found (discovery
    # walks up from the working directory): what is measured is the default
    # check, not a project's configuration or its pyproject.toml.
    os.chdir(args.workdir)
    results: dict[str, ScenarioResult] = {}
    comparisons: dict[str, Comparison] = {}
    for name in args.scenario:
        scn = SCENARIOS[name]
        image = images.get(name)
        comp = scn.comparison(setup, Path(image.path) if image is not None else None)
        comparisons[name] = comp
        try:
            results[name] = run_scenario(scn, comp, image, args.rounds, env, floor_kib)
        except OSError as exc:
            print(f"error: running {name} failed: {exc}", file=sys.stderr)
            return EXIT_SETUP
    info["load_average_end"] = load_average()

    for res in results.values():
        print_table(res, floor_kib)
    print_summary(results, floor_kib)
    targets = evaluate_targets(results)
    if targets:
        print_targets(targets)
    print()
    print(f"load: {fmt_load(info['load_average_start'])} at start, {fmt_load(info['load_average_end'])} at end")

    if args.json is not None:
        payload = {
            "environment": info,
            "qcow2lint_cmd": args.lint_argv,
            "rounds": args.rounds,
            "warmup_runs_per_command": 1,
            "rss_unit": "maxrss_kib: ru_maxrss in KiB; *_mb fields: 10^6 bytes",
            "images": {n: asdict(i) for n, i in images.items()},
            "scenarios": {
                n: {
                    "description": r.description,
                    "commands": {e.label: [list(c) for c in e.cmds] for e in comparisons[n].entries()},
                    "subject": r.subject,
                    "reference": r.reference,
                    "aborted": r.aborted,
                    "time_ratio": r.time_ratio,
                    "time_ratio_min_walls": r.time_ratio_min,
                    "peak_rss_ratio": r.rss_ratio,
                    "stats": {k: asdict(v) for k, v in r.stats.items()},
                    "runs": [asdict(x) for x in r.runs],
                }
                for n, r in results.items()
            },
            "targets": [asdict(t) for t in targets],
        }
        try:
            args.json.write_text(json.dumps(payload, indent=2) + "\n")
        except OSError as exc:
            print(f"error: writing {args.json}: {exc}", file=sys.stderr)
            return EXIT_SETUP
        print(f"raw figures written to {args.json}")

    if any(not r.valid for r in results.values()) or any(not t.passed for t in targets):
        return EXIT_TARGETS
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
