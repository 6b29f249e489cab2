#!/usr/bin/env python3
"""Benchmark qcow2lint against ``qemu-img check`` on large qcow2 images.

Standalone script (not a test).  It builds benchmark images in a work
directory (reusing them when a recipe marker matches), then runs
``qemu-img check IMG`` and the qcow2lint command alternately for a number
of rounds, measuring wall time and the child's peak RSS, and prints a
side-by-side table plus PASS/FAIL for the performance targets.

Example::

    python benchmarks/bench.py --scenario prealloc-1t --scenario scattered-10g

Only the Python standard library is used.
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
DEFAULT_QCOW2LINT_CMD = "qcow2lint check"
DEFAULT_ROUNDS = 5

# Targets (see benchmarks/README.md).
TARGET_RATIO_SCENARIOS = ("prealloc-1t", "scattered-10g")
TARGET_MAX_RATIO = 1.0
TARGET_RSS_SCENARIO = "prealloc-1t"
TARGET_MAX_RSS_MB = 200.0
TARGET_MAX_SCALING_2T_1T = 2.2

# Exit codes of this script.
EXIT_OK = 0  # everything ran and all evaluated targets passed
EXIT_TARGETS = 1  # ran to completion, but a target failed or a tool run failed
EXIT_USAGE = 2  # argparse error
EXIT_SETUP = 3  # could not build an image / tool missing

# Scattered scenario parameters.
SCATTER_SIZE = 10 * GIB
SCATTER_CHUNK = 4 * KIB
SCATTER_COUNT = 262_144  # 1 GiB of data in 4 KiB pieces
SCATTER_SEED = 20240601


class BenchError(Exception):
    """Fatal setup error (image build failed, tool missing, ...)."""


# --------------------------------------------------------------------------
# Scenarios / image building
# --------------------------------------------------------------------------


def run_checked(cmd: Sequence[str]) -> None:
    """Run *cmd*, raising :class:`BenchError` with its stderr on failure."""
    proc = subprocess.run(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"command failed (exit {proc.returncode}): {shlex.join(cmd)}\n{proc.stderr.strip()}")


def build_prealloc(img: Path, size: str) -> None:
    """Create a metadata-preallocated qcow2 image of *size* at *img*."""
    run_checked(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata", str(img), size])


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


@dataclass(frozen=True)
class Scenario:
    """A benchmark image recipe."""

    name: str
    description: str
    recipe: dict[str, Any]
    builder: Callable[[Path], None]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "prealloc-1t",
            "qemu-img create -f qcow2 -o preallocation=metadata 1T (~16.7 M L2 entries)",
            {"kind": "prealloc", "size": "1T", "version": 1},
            lambda p: build_prealloc(p, "1T"),
        ),
        Scenario(
            "scattered-10g",
            "10 GiB, 4 KiB clusters, 1 GiB written in 262144 scattered 4 KiB pieces",
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
        Scenario(
            "prealloc-2t",
            "qemu-img create -f qcow2 -o preallocation=metadata 2T (~33.5 M L2 entries)",
            {"kind": "prealloc", "size": "2T", "version": 1},
            lambda p: build_prealloc(p, "2T"),
        ),
    )
}


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


def marker_path(img: Path) -> Path:
    """Return the recipe marker path for *img*."""
    return img.with_name(img.name + ".recipe.json")


def ensure_image(scn: Scenario, workdir: Path, rebuild: bool) -> ImageInfo:
    """Build the image for *scn* unless a matching one already exists."""
    img = workdir / f"{scn.name}.qcow2"
    marker = marker_path(img)
    build_seconds: float | None = None
    reused = False
    if not rebuild and img.exists() and marker.exists():
        try:
            data = json.loads(marker.read_text())
        except (OSError, ValueError):
            data = {}
        if data.get("recipe") == scn.recipe:
            reused = True
            build_seconds = data.get("build_seconds")
    if not reused:
        marker.unlink(missing_ok=True)
        img.unlink(missing_ok=True)
        tmp = img.with_name(img.name + ".tmp")
        tmp.unlink(missing_ok=True)
        print(f"[build] {scn.name}: {scn.description} -> {img}", flush=True)
        t0 = time.perf_counter()
        try:
            run_builder(scn.builder, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        build_seconds = time.perf_counter() - t0
        os.replace(tmp, img)
        marker.write_text(
            json.dumps(
                {
                    "recipe": scn.recipe,
                    "build_seconds": build_seconds,
                    "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                },
                indent=2,
            )
        )
        print(f"[build] {scn.name}: done in {build_seconds:.1f} s", flush=True)
    else:
        bs = f"{build_seconds:.1f} s" if build_seconds is not None else "?"
        print(f"[build] {scn.name}: reusing {img} (originally built in {bs})", flush=True)
    st = img.stat()
    return ImageInfo(str(img), reused, build_seconds, st.st_size, st.st_blocks * 512)


# --------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------


@dataclass
class Run:
    """One measured invocation of a tool."""

    tool: str
    round: int  # 0 = warm-up
    wall_s: float
    maxrss_kib: int
    exit_code: int
    ok: bool


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


def measure(cmd: Sequence[str]) -> tuple[float, int, int]:
    """Run *cmd* once; return (wall seconds, peak RSS KiB, exit code).

    Output is discarded.  ``os.wait4`` gives the rusage of exactly this
    child.  A negative exit code means the child was killed by that signal.
    """
    reset_peak_rss()
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code  # already reaped; keep Popen from waiting again
    return wall, int(rusage.ru_maxrss), code


def rss_floor_kib() -> int | None:
    """Peak RSS (KiB) reported for ``true`` spawned the same way.

    This is the measurement floor: a tool reported at (about) this value
    really used this much or less.
    """
    exe = shutil.which("true")
    if exe is None:
        return None
    return min(measure([exe])[1] for _ in range(3))


def fmt_rss(kib: float, floor_kib: int | None) -> str:
    """Format an RSS in MB, as ``<=X`` when within 1 MiB of the floor."""
    mb = kib * KIB / MB
    if floor_kib is not None and kib <= floor_kib + 1024:
        return f"<={mb:.1f}"
    return f"{mb:.1f}"


@dataclass
class Tool:
    """A command to benchmark and the exit codes considered success."""

    label: str
    argv: list[str]
    ok_codes: frozenset[int]

    def command(self, img: str) -> list[str]:
        """Return the argv for checking *img*."""
        return [*self.argv, img]


@dataclass
class ToolStats:
    """Aggregated figures for one tool on one scenario."""

    tool: str
    median_wall_s: float
    min_wall_s: float
    max_wall_s: float
    median_rss_mb: float
    max_rss_mb: float
    exit_codes: list[int]
    all_ok: bool


def summarize(tool: str, runs: list[Run]) -> ToolStats:
    """Aggregate the timed (non-warm-up) *runs* of *tool*."""
    rs = [r for r in runs if r.tool == tool and r.round > 0]
    walls = [r.wall_s for r in rs]
    rss = [r.maxrss_kib * KIB / MB for r in rs]
    return ToolStats(
        tool,
        statistics.median(walls),
        min(walls),
        max(walls),
        statistics.median(rss),
        max(rss),
        [r.exit_code for r in rs],
        all(r.ok for r in rs),
    )


@dataclass
class ScenarioResult:
    """Everything measured for one scenario."""

    scenario: str
    description: str
    image: ImageInfo
    runs: list[Run] = field(default_factory=list)
    stats: dict[str, ToolStats] = field(default_factory=dict)
    ratio: float | None = None  # qcow2lint median / qemu-img median
    ratio_min: float | None = None  # same with min walls (informational)


def bench_scenario(
    scn: Scenario, image: ImageInfo, tools: list[Tool], rounds: int, floor_kib: int | None
) -> ScenarioResult:
    """Warm up, then run *tools* alternately for *rounds* rounds."""
    res = ScenarioResult(scn.name, scn.description, image)

    def one(tool: Tool, rnd: int) -> None:
        """Measure one run of *tool* (round 0 = warm-up) and log it."""
        wall, rss, code = measure(tool.command(image.path))
        ok = code in tool.ok_codes
        res.runs.append(Run(tool.label, rnd, wall, rss, code, ok))
        tag = "warm-up" if rnd == 0 else f"round {rnd}/{rounds}"
        flag = "" if ok else "  <-- FAILURE"
        print(
            f"  {tag:>12}  {tool.label:<24} {wall:8.3f} s {fmt_rss(rss, floor_kib):>9} MB  exit {code}{flag}",
            flush=True,
        )

    print(
        f"[run] {scn.name}: 1 warm-up run of each tool (page cache), then {rounds} timed rounds, alternating",
        flush=True,
    )
    for tool in tools:
        one(tool, 0)
    for rnd in range(1, rounds + 1):
        for tool in tools:
            one(tool, rnd)
    for tool in tools:
        res.stats[tool.label] = summarize(tool.label, res.runs)
    ref, lint = (res.stats[t.label] for t in tools)
    if ref.median_wall_s > 0:
        res.ratio = lint.median_wall_s / ref.median_wall_s
    if ref.min_wall_s > 0:
        res.ratio_min = lint.min_wall_s / ref.min_wall_s
    return res


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def fmt_codes(codes: list[int]) -> str:
    """Compact exit-code list: ``0x5`` or ``0,0,1,0,0``."""
    if codes and all(c == codes[0] for c in codes):
        return f"{codes[0]}x{len(codes)}"
    return ",".join(str(c) for c in codes)


def print_table(res: ScenarioResult, tools: list[Tool], floor_kib: int | None) -> None:
    """Print the side-by-side table for one scenario."""
    img = res.image
    print()
    print(f"== {res.scenario}: {res.description}")
    print(
        f"   image {img.path}: {img.apparent_bytes / GIB:.1f} GiB apparent size, {img.disk_bytes / MB:.0f} MB on disk"
    )
    hdr = f"   {'tool':<26}{'median s':>10}{'min s':>10}{'max s':>10}{'med RSS MB':>12}  {'exit codes':<14}status"
    print(hdr)
    print("   " + "-" * (len(hdr) - 3))
    for tool in tools:
        s = res.stats[tool.label]
        status = "ok" if s.all_ok else "FAILURE"
        print(
            f"   {s.tool:<26}{s.median_wall_s:>10.3f}{s.min_wall_s:>10.3f}"
            f"{s.max_wall_s:>10.3f}"
            f"{fmt_rss(s.median_rss_mb * MB / KIB, floor_kib):>12}  "
            f"{fmt_codes(s.exit_codes):<14}{status}"
        )
    lint = res.stats[tools[1].label]
    ref = res.stats[tools[0].label]
    ratio = f"{res.ratio:.2f}" if res.ratio is not None else "n/a"
    if ref.max_rss_mb > 0:
        print(f"   ratio qcow2lint/qemu-img (peak RSS): {lint.max_rss_mb / ref.max_rss_mb:.2f}")
    if res.ratio_min is not None:
        ratio += f" (min walls: {res.ratio_min:.2f})"
    print(
        f"   ratio qcow2lint/qemu-img (median wall): {ratio}; "
        f"qcow2lint peak RSS: {fmt_rss(lint.max_rss_mb * MB / KIB, floor_kib)}"
        f" MB (median {fmt_rss(lint.median_rss_mb * MB / KIB, floor_kib)}"
        " MB)"
    )


@dataclass
class Target:
    """One performance target and its verdict."""

    name: str
    measured: str
    limit: str
    passed: bool
    note: str = ""


def evaluate_targets(results: dict[str, ScenarioResult], lint_label: str) -> list[Target]:
    """Evaluate the targets that apply to the scenarios that were run."""
    targets: list[Target] = []
    for name in TARGET_RATIO_SCENARIOS:
        res = results.get(name)
        if res is None:
            continue
        ok_runs = all(s.all_ok for s in res.stats.values())
        passed = ok_runs and res.ratio is not None and res.ratio <= TARGET_MAX_RATIO
        targets.append(
            Target(
                f"{name}: time ratio qcow2lint/qemu-img",
                f"{res.ratio:.2f}" if res.ratio is not None else "n/a",
                f"<= {TARGET_MAX_RATIO:.1f}",
                passed,
                "" if ok_runs else "a tool run failed",
            )
        )
    res = results.get(TARGET_RSS_SCENARIO)
    if res is not None:
        s = res.stats[lint_label]
        targets.append(
            Target(
                f"{TARGET_RSS_SCENARIO}: qcow2lint peak RSS",
                f"{s.max_rss_mb:.1f} MB",
                f"<= {TARGET_MAX_RSS_MB:.0f} MB",
                s.all_ok and s.max_rss_mb <= TARGET_MAX_RSS_MB,
                "" if s.all_ok else "qcow2lint run failed",
            )
        )
    r1, r2 = results.get("prealloc-1t"), results.get("prealloc-2t")
    if r1 is not None and r2 is not None:
        s1, s2 = r1.stats[lint_label], r2.stats[lint_label]
        scale = s2.median_wall_s / s1.median_wall_s if s1.median_wall_s > 0 else float("inf")
        ok_runs = s1.all_ok and s2.all_ok
        targets.append(
            Target(
                "qcow2lint time prealloc-2t / prealloc-1t",
                f"{scale:.2f}x",
                f"<= {TARGET_MAX_SCALING_2T_1T:.1f}x",
                ok_runs and scale <= TARGET_MAX_SCALING_2T_1T,
                "" if ok_runs else "qcow2lint run failed",
            )
        )
    return targets


def first_line(cmd: Sequence[str]) -> str:
    """First line of *cmd*'s stdout, or an error marker."""
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, check=False).stdout
    except OSError as exc:
        return f"<{exc}>"
    return out.splitlines()[0] if out.strip() else "<no output>"


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


def environment() -> dict[str, Any]:
    """Describe the machine and tool versions."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "qemu_img_version": first_line(["qemu-img", "--version"]),
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    scen_help = "; ".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"scenarios: {scen_help}\n\n"
            "exit codes: 0 = all runs ok and all evaluated targets PASS; "
            "1 = a target FAILed or a tool run failed;\n"
            "2 = usage error; 3 = setup error (image build failed, "
            "tool missing)."
        ),
    )
    p.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help=f"scenario to run (repeatable; default prealloc-1t; choices: {', '.join(SCENARIOS)})",
    )
    p.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help=f"where images are kept (default {DEFAULT_WORKDIR})"
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild images even if a matching one exists")
    p.add_argument(
        "--rounds", type=int, default=DEFAULT_ROUNDS, help=f"timed rounds per tool (default {DEFAULT_ROUNDS})"
    )
    p.add_argument(
        "--qcow2lint-cmd",
        default=DEFAULT_QCOW2LINT_CMD,
        help=f"qcow2lint command, split with shlex; the image path is appended (default '{DEFAULT_QCOW2LINT_CMD}')",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write all raw figures to FILE as JSON")
    p.add_argument("--build-only", action="store_true", help="only build (or verify) the images, do not benchmark")
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be >= 1")
    try:
        args.lint_argv = shlex.split(args.qcow2lint_cmd)
    except ValueError as exc:
        p.error(f"--qcow2lint-cmd: {exc}")
    if not args.lint_argv:
        p.error("--qcow2lint-cmd is empty")
    # De-duplicate while keeping order.
    args.scenario = list(dict.fromkeys(args.scenario or ["prealloc-1t"]))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = parse_args(argv)
    env = environment()
    print(f"qemu-img: {env['qemu_img_version']}")
    print(f"machine:  nproc {env['nproc']}, CPU {env['cpu_model']}, kernel {env['kernel']}, Python {env['python']}")
    print(f"qcow2lint command: {shlex.join(args.lint_argv)} IMG")
    print(f"scenarios: {', '.join(args.scenario)}; rounds: {args.rounds}; workdir: {args.workdir}")
    print("(RSS in MB = 10^6 bytes; wall = time.perf_counter around the child; peak RSS = ru_maxrss from os.wait4)")
    print(flush=True)

    needed = ["qemu-img"] if args.build_only else ["qemu-img", args.lint_argv[0]]
    for exe in needed:
        if shutil.which(exe) is None:
            print(f"error: command not found: {exe}", file=sys.stderr)
            return EXIT_SETUP

    tools = [
        Tool("qemu-img check", ["qemu-img", "check"], frozenset({0})),
        Tool("qcow2lint", args.lint_argv, frozenset({0, 1})),
    ]

    try:
        args.workdir.mkdir(parents=True, exist_ok=True)
        images = {name: ensure_image(SCENARIOS[name], args.workdir, args.rebuild) for name in args.scenario}
    except (BenchError, OSError) as exc:
        print(f"error: building images failed: {exc}", file=sys.stderr)
        return EXIT_SETUP

    results: dict[str, ScenarioResult] = {}
    floor_kib: int | None = None
    if not args.build_only:
        floor_kib = rss_floor_kib()
        env["rss_floor_kib"] = floor_kib
        env["peak_rss_reset"] = reset_peak_rss()
        if floor_kib is not None:
            print(
                f"\nRSS floor: `true` spawned the same way reports "
                f"{floor_kib * KIB / MB:.1f} MB (ru_maxrss counts the "
                "pre-exec memory shared with this Python process);\n"
                "figures shown as <=X are at that floor: the tool used "
                "that much or less."
            )
        print()
        for name in args.scenario:
            try:
                results[name] = bench_scenario(SCENARIOS[name], images[name], tools, args.rounds, floor_kib)
            except OSError as exc:
                print(f"error: running {name} failed: {exc}", file=sys.stderr)
                return EXIT_SETUP
        for name in args.scenario:
            print_table(results[name], tools, floor_kib)

    targets = evaluate_targets(results, tools[1].label)
    if targets:
        print()
        print("== targets")
        for t in targets:
            note = f"  ({t.note})" if t.note else ""
            print(f"   {'PASS' if t.passed else 'FAIL'}  {t.name}: {t.measured} (target {t.limit}){note}")

    if args.json is not None:
        payload = {
            "environment": env,
            "qcow2lint_cmd": args.lint_argv,
            "rounds": args.rounds,
            "warmup_runs_per_tool": 1,
            "rss_unit": "ru_maxrss KiB; *_mb fields are 10^6 bytes",
            "images": {n: asdict(i) for n, i in images.items()},
            "scenarios": {
                n: {
                    "description": r.description,
                    "ratio_qcow2lint_over_qemu_img": r.ratio,
                    "ratio_min_walls": r.ratio_min,
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
        print(f"\nraw figures written to {args.json}")

    failed_runs = any(not s.all_ok for r in results.values() for s in r.stats.values())
    if failed_runs or any(not t.passed for t in targets):
        return EXIT_TARGETS
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
