#!/usr/bin/env python3
"""A fleet of small images, side by side in one run: ``check --scheduler``
on a two-worker Dask cluster, ``check --jobs 2``, and one ``qemu-img check``
per image; images per second, and the peak RSS of the process that runs
``qcow2lint`` (the client: worker processes not counted) with ``--format
jsonl`` and ``--format json``.

Run it with the interpreter qcow2lint is installed in, with the ``fleet``
extra (``pip install -e '.[fleet]'``)::

    python benchmarks/fleet.py [--images 2000] [--workdir /tmp/qcow2lint-fleet] [--json FILE]

It needs ``qemu-img`` and ``qemu-io``.  The images are built once (200
distinct ones, copied to ``--images`` names) and kept in ``--workdir``.
Each command runs once: it is CPU-heavy, and the figures are per image over
thousands of images.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DISTINCT = 200
MIB = 1 << 20

#: Runs qcow2lint in this child and writes the child's own peak RSS
#: (VmHWM: its worker processes are not counted) to the file argv[1].
PEAK_WRAPPER = """
import runpy, sys
report, sys.argv = sys.argv[1], ["qcow2lint", *sys.argv[2:]]
try:
    runpy.run_module("qcow2lint", run_name="__main__")
finally:
    with open("/proc/self/status") as status, open(report, "w") as out:
        out.write(next(line for line in status if line.startswith("VmHWM:")).split()[1])
"""

#: Starts the cluster ``--scheduler local`` starts (N one-thread worker
#: processes, qcow2lint's worker settings), prints its address, and keeps it
#: until stdin closes.
CLUSTER = """
import sys
from qcow2lint.fleet import connect
if __name__ == "__main__":
    client, cluster = connect("local", int(sys.argv[1]))
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()
    client.close()
    cluster.close()
"""


def build(workdir: Path, count: int) -> Path:
    """``count`` images in ``workdir/fleet-COUNT``: 200 distinct small images
    (16-256 MiB virtual, 64 KiB clusters, a few written clusters, some v2,
    some with a snapshot), copied to ``count`` names."""
    distinct = workdir / "distinct"
    if not (distinct / "done").exists():
        shutil.rmtree(distinct, ignore_errors=True)
        distinct.mkdir(parents=True)
        for index in range(DISTINCT):
            path = distinct / f"d{index:03d}.qcow2"
            size = (16 + 16 * (index % 16)) * MIB
            compat = "0.10" if index % 5 == 0 else "1.1"
            subprocess.run(
                [
                    "qemu-img",
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-o",
                    f"compat={compat},cluster_size=65536",
                    path,
                    str(size),
                ],
                check=True,
            )
            writes = [f"write -P {index % 251} {(k * 7 * MIB) % size} 64k" for k in range(1 + index % 6)]
            subprocess.run(
                ["qemu-io", "-f", "qcow2", *sum((["-c", w] for w in writes), []), path], check=True, capture_output=True
            )
            if index % 7 == 3 and compat == "1.1":
                subprocess.run(["qemu-img", "snapshot", "-c", "s1", path], check=True)
        (distinct / "done").touch()
    fleet = workdir / f"fleet-{count}"
    if not (fleet / "done").exists():
        shutil.rmtree(fleet, ignore_errors=True)
        fleet.mkdir()
        for index in range(count):
            shutil.copyfile(distinct / f"d{index % DISTINCT:03d}.qcow2", fleet / f"img-{index:05d}.qcow2")
        (fleet / "done").touch()
    return fleet


def images_of(fleet: Path) -> list[str]:
    return sorted(str(path) for path in fleet.glob("*.qcow2"))


def timed_check(python: str, peak: Path, args: list[str]) -> dict[str, float | int]:
    """One ``qcow2lint ARGS`` run: wall seconds, exit code, client peak RSS, output size."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([python, "-c", PEAK_WRAPPER, str(peak), *args], capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of the run's whole process tree (workers included when the run
    # started them): on a loaded machine a steadier figure than the wall.
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if proc.returncode not in (0, 1):
        sys.exit(f"qcow2lint {' '.join(args[:6])} ...: exit {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return {
        "wall": wall,
        "cpu": cpu,
        "exit": proc.returncode,
        "peak_rss_mib": int(peak.read_text()) / 1024,
        "stdout_bytes": len(proc.stdout),
    }


def median_of(rounds: int, run: Callable[[], dict[str, float | int]]) -> dict[str, Any]:
    """``run()`` ``rounds`` times: the figures of the run with the median wall time."""
    runs = sorted((run() for _ in range(rounds)), key=lambda figures: figures["wall"])
    return runs[len(runs) // 2] | {"rounds": rounds, "walls": [figures["wall"] for figures in runs]}


def qemu_img_all(paths: list[str]) -> dict[str, float]:
    """Wall and CPU seconds of one ``qemu-img check`` per image, one after the other."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for path in paths:
        subprocess.run(["qemu-img", "check", "-q", path], check=False, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"wall": wall, "cpu": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="fleet size (default 2000)")
    parser.add_argument("--small", type=int, default=200, help="the smaller fleet for the memory comparison")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qcow2lint-fleet"))
    parser.add_argument("--python", default=sys.executable, help="the interpreter qcow2lint runs on")
    parser.add_argument("--json", type=Path, help="write every figure to FILE")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the throughput runs: the median is shown (default 3)"
    )
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    fleet = build(args.workdir, args.images)
    small = build(args.workdir, args.small)
    paths = images_of(fleet)
    count = len(paths)
    peak = args.workdir / "peak"
    results: dict[str, dict[str, Any]] = {}

    # The directory is the argument (the shell's argument list would be long).
    def check(*words: str) -> dict[str, float | int]:
        return timed_check(args.python, peak, ["check", *words])

    results["jobs-2 json"] = median_of(args.rounds, lambda: check("-f", "json", "--jobs", "2", str(fleet)))
    results["jobs-2 jsonl"] = timed_check(args.python, peak, ["check", "-f", "jsonl", "--jobs", "2", str(fleet)])
    results["scheduler-local json (cluster start included)"] = median_of(
        args.rounds, lambda: check("-f", "json", "--scheduler", "local", "--jobs", "2", str(fleet))
    )
    cluster = subprocess.Popen(
        [args.python, "-c", CLUSTER, "2"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert cluster.stdout is not None
        address = cluster.stdout.readline().strip()
        # The first run on the fresh workers loads qcow2lint and its rules there.
        results["scheduler json (cluster running)"] = median_of(
            args.rounds, lambda: check("-f", "json", "--scheduler", address, str(fleet))
        )
        results["scheduler jsonl (cluster running)"] = timed_check(
            args.python, peak, ["check", "-f", "jsonl", "--scheduler", address, str(fleet)]
        )
        results[f"scheduler jsonl {args.small} images (cluster running)"] = timed_check(
            args.python, peak, ["check", "-f", "jsonl", "--scheduler", address, str(small)]
        )
    finally:
        if cluster.stdin is not None:
            cluster.stdin.close()
        cluster.wait(timeout=120)
    results[f"jobs-2 jsonl {args.small} images"] = timed_check(
        args.python, peak, ["check", "-f", "jsonl", "--jobs", "2", str(small)]
    )
    results["qemu-img check, one per image, sequential"] = dict(qemu_img_all(paths))

    print(f"{count} images ({DISTINCT} distinct), {os.cpu_count()} CPUs\n")
    print(f"{'run':<52} {'wall s':>8} {'images/s':>9} {'CPU s':>7} {'client peak RSS MiB':>20}")
    for name, figures in results.items():
        images = args.small if str(args.small) in name.split() else count
        rss = figures.get("peak_rss_mib")
        # a running cluster's workers are not this run's children: their CPU is not counted
        cpu = "" if "running" in name else f"{figures['cpu']:.1f}"
        print(
            f"{name:<52} {figures['wall']:>8.2f} {images / figures['wall']:>9.0f} {cpu:>7} "
            f"{'' if rss is None else f'{rss:.0f}':>20}"
        )
    base = count / results["jobs-2 json"]["wall"]
    for name in ("scheduler-local json (cluster start included)", "scheduler json (cluster running)"):
        print(f"{name}: {count / results[name]['wall'] / base:.2f} x the throughput of --jobs 2 (target >= 0.8)")
    if args.json:
        args.json.write_text(json.dumps({"images": count, "cpus": os.cpu_count(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
