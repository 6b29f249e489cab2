#!/usr/bin/env python3
"""Issue 13's start-up and batch figures, side by side with their references.

Standalone script (not a test), standard library only.  Alternating rounds,
medians of wall time, peak RSS from ``os.wait4``:

* ``qcow2lint --version`` against ``python -c pass`` (target <= 1.5x);
* ``qcow2lint check`` of a fresh 1 GiB image against
  ``python -c "import numpy"`` (target <= 1.5x), with ``qemu-img check``;
* a batch: one ``qcow2lint check DIR`` of 100 small images against 100
  ``qemu-img check`` calls.

    python benchmarks/startup.py [--rounds 7] [--python PY] [--qcow2lint CMD]
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

MB = 1_000_000


def run(cmds: list[list[str]]) -> tuple[float, float]:
    """Wall seconds of running ``cmds`` one after another, and the largest
    peak RSS (MB) among them."""
    start = time.perf_counter()
    peak = 0
    for cmd in cmds:
        child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(child.pid, 0)
        peak = max(peak, usage.ru_maxrss)
    return time.perf_counter() - start, peak * 1024 / MB


def compare(name: str, pairs: dict[str, list[list[str]]], rounds: int, target: float | None) -> None:
    """Run each entry of ``pairs`` alternately; print medians and the ratio
    of the first to the second."""
    walls: dict[str, list[float]] = {label: [] for label in pairs}
    rss: dict[str, list[float]] = {label: [] for label in pairs}
    for cmds in pairs.values():  # warm-up (page cache)
        run(cmds)
    for _ in range(rounds):
        for label, cmds in pairs.items():
            wall, peak = run(cmds)
            walls[label].append(wall)
            rss[label].append(peak)
    print(f"== {name}")
    for label in pairs:
        print(f"   {label:<44} {statistics.median(walls[label]):8.3f} s  {statistics.median(rss[label]):7.1f} MB")
    first, second = list(pairs)[:2]
    ratio = statistics.median(walls[first]) / statistics.median(walls[second])
    rss_ratio = statistics.median(rss[first]) / statistics.median(rss[second])
    verdict = "" if target is None else f"  target <= {target}: {'PASS' if ratio <= target else 'FAIL'}"
    print(f"   ratio {first} / {second}: time {ratio:.2f}, RSS {rss_ratio:.2f}{verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--python", default=sys.executable, help="the interpreter qcow2lint runs on")
    parser.add_argument("--qcow2lint", default="qcow2lint")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qcow2lint-startup"))
    args = parser.parse_args(argv)
    lint = shlex.split(args.qcow2lint)
    work = args.workdir
    (work / "batch").mkdir(parents=True, exist_ok=True)
    fresh = work / "fresh-1g.qcow2"
    if not fresh.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(fresh), "1G"], check=True)
    small = sorted((work / "batch").glob("*.qcow2"))
    if len(small) < 100:
        for index in range(100):
            path = work / "batch" / f"img{index:03}.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
            subprocess.run(
                ["qemu-io", "-c", f"write -P {index % 256} 0 64k", str(path)], check=True, stdout=subprocess.DEVNULL
            )
        small = sorted((work / "batch").glob("*.qcow2"))
    compare(
        "--version start-up",
        {
            "qcow2lint --version": [[*lint, "--version"]],
            "python -c pass": [[args.python, "-c", "pass"]],
        },
        args.rounds,
        1.5,
    )
    compare(
        "fresh 1 GiB image",
        {
            "qcow2lint check fresh-1g": [[*lint, "check", str(fresh)]],
            "python -c 'import numpy'": [[args.python, "-c", "import numpy"]],
            "qemu-img check fresh-1g": [["qemu-img", "check", str(fresh)]],
        },
        args.rounds,
        1.5,
    )
    compare(
        "batch of 100 small images",
        {
            "qcow2lint check DIR (one call)": [[*lint, "check", str(work / "batch")]],
            "qemu-img check x100": [["qemu-img", "check", "-q", str(p)] for p in small],
        },
        max(3, args.rounds // 2),
        None,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
