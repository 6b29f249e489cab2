#!/usr/bin/env python3
"""A structure-aware mutation fuzzer for qcow2lint.

Builds seed images with qemu-img (v2/v3, cluster sizes, extended L2,
compressed zlib/zstd clusters, snapshots, persistent bitmaps, LUKS, an
external data file, a backing file), finds their structures with a small
parser of its own, and mutates them: header fields, extensions, L1/L2
entries, the refcount table and blocks, the snapshot table, the bitmap
directory and tables, the LUKS area; bit flips, hostile values (0, 1, 2^31,
2^32-1, 2^63, 2^64-1, the file size +-1), cross pointers (one table pointed
at another), truncation.

Every mutant runs in-process through the library, in a forked worker with
an address-space limit and a per-operation alarm: ``lint`` with every rule
enabled, statistics and ``deep``; the standard dump as text and as JSON;
every report renderer.  A mutant fails when an exception escapes, a finding
is an internal error (Q0000), an operation passes the time bound, the
worker's peak RSS passes the memory bound, an output passes the size bound,
the worker dies, or the image bytes change.  Failing inputs are saved to
``fuzz/failures/`` with a one-line reproduction command.

    python fuzz/fuzz.py --minutes 10 [--seed S] [--jobs 1]
    python fuzz/fuzz.py --replay fuzz/failures/NAME.qcow2
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

#: The bounds every run must keep, per mutant (docs/cost-model.md).
TIME_LIMIT = 10.0  # seconds per operation (check, dump, dump --json, renderers)
MEMORY_LIMIT = 300 << 20  # peak RSS growth of the worker over its start, bytes
OUTPUT_LIMIT = 8 << 20  # bytes of any one rendered output
#: Hard address-space headroom over the worker's start (a MemoryError, not the OOM killer).
ADDRESS_SPACE_HEADROOM = 1 << 30
BATCH = 40  # mutants per forked worker

HOSTILE = (0, 1, 2, 0x1FF, 0x200, 1 << 31, (1 << 31) - 1, (1 << 32) - 1, 1 << 32, 1 << 63, (1 << 64) - 1, (1 << 62))

# --- seeds ------------------------------------------------------------------

SEEDS: dict[str, list[list[str]]] = {
    # name: qemu-img / qemu-io command lines ({img}, {dir} substituted)
    "v3-64k": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "{img}", "4M"],
        ["qemu-io", "-c", "write -P 0xab 0 192k", "-c", "write -z 1M 64k", "{img}"],
    ],
    "v2-4k": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -P 0x11 0 20k", "{img}"],
    ],
    "v3-512": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "{img}", "256k"],
        ["qemu-io", "-c", "write -P 0x22 0 8k", "-c", "write -P 0x23 100k 2k", "{img}"],
    ],
    "v3-2m": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", "{img}", "8M"],
        ["qemu-io", "-c", "write -P 0x33 0 4k", "{img}"],
    ],
    "extl2": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=64k", "{img}", "2M"],
        ["qemu-io", "-c", "write -P 0x44 0 4k", "-c", "write -P 0x45 64k 64k", "-c", "write -z 128k 2k", "{img}"],
    ],
    "zlib": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -c -P 0x55 0 16k", "-c", "write -P 0x56 64k 4k", "{img}"],
    ],
    "zstd": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compression_type=zstd,cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -c -P 0x66 0 16k", "{img}"],
    ],
    "snapshots": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -P 0x77 0 8k", "{img}"],
        ["qemu-img", "snapshot", "-q", "-c", "first", "{img}"],
        ["qemu-io", "-c", "write -P 0x78 4k 8k", "{img}"],
        ["qemu-img", "snapshot", "-q", "-c", "second", "{img}"],
    ],
    "bitmaps": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "{img}", "4M"],
        ["qemu-img", "bitmap", "--add", "{img}", "daily"],
        ["qemu-img", "bitmap", "--add", "-g", "65536", "{img}", "weekly"],
        ["qemu-io", "-c", "write -P 0x88 0 64k", "{img}"],
    ],
    "luks": [
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "--object",
            "secret,id=sec0,data=abc",
            "-o",
            "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,cluster_size=4096",
            "{img}",
            "1M",
        ]
    ],
    "datafile": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file={dir}/data.raw,cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -P 0x99 0 8k", "{img}"],
    ],
    "lazy-refcounts": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on,cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -P 0xa1 0 12k", "{img}"],
    ],
    "prealloc-metadata": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=metadata,cluster_size=4096", "{img}", "512k"],
    ],
    "v2-snapshots": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -P 0xa2 0 8k", "{img}"],
        ["qemu-img", "snapshot", "-q", "-c", "one", "{img}"],
        ["qemu-io", "-c", "write -P 0xa3 0 4k", "{img}"],
    ],
    "backing": [
        ["qemu-img", "create", "-q", "-f", "qcow2", "{dir}/base.qcow2", "1M"],
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            "base.qcow2",
            "-F",
            "qcow2",
            "-o",
            "cluster_size=4096",
            "{img}",
            "1M",
        ],
        ["qemu-io", "-c", "write -P 0xaa 0 4k", "{img}"],
    ],
}


# Every refcount width (16 bits is the default of the seeds above) and every
# cluster size QEMU supports (512 B, 4 KiB, 64 KiB and 2 MiB are above).
for _bits in (1, 2, 4, 8, 32, 64):
    SEEDS[f"refcount-{_bits}"] = [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"refcount_bits={_bits},cluster_size=4096", "{img}", "1M"],
        ["qemu-io", "-c", "write -P 0xb1 0 12k", "-c", "write -P 0xb2 256k 4k", "{img}"],
    ]
for _size in ("1k", "2k", "8k", "16k", "32k", "128k", "256k", "512k", "1M"):
    SEEDS[f"cluster-{_size}"] = [
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"cluster_size={_size}", "{img}", "4M"],
        ["qemu-io", "-c", "write -P 0xc1 0 4k", "-c", "write -P 0xc2 1M 4k", "{img}"],
    ]


def build_seeds(directory: Path) -> dict[str, bytes]:
    """The seed images' bytes, built once into ``directory``."""
    seeds = {}
    for name, commands in SEEDS.items():
        image = directory / name / "seed.qcow2"
        if not image.exists():
            image.parent.mkdir(parents=True, exist_ok=True)
            for argv in commands:
                argv = [arg.format(img=image, dir=image.parent) for arg in argv]
                for _ in range(4):  # LUKS timing glitch on a busy machine
                    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
                    if "Unable to get accurate CPU usage" not in proc.stderr:
                        break
                if proc.returncode != 0:
                    raise SystemExit(f"building seed {name}: {' '.join(argv)}: {proc.stderr.strip()}")
        seeds[name] = image.read_bytes()
    return seeds


# --- where the structures are (a tolerant parser of its own) -----------------

HEADER_FIELDS = (  # (offset, width) of every header field
    (0, 4),
    (4, 4),
    (8, 8),
    (16, 4),
    (20, 4),
    (24, 8),
    (32, 4),
    (36, 4),
    (40, 8),
    (48, 8),
    (56, 4),
    (60, 4),
    (64, 8),
    (72, 8),
    (80, 8),
    (88, 8),
    (96, 4),
    (100, 4),
    (104, 1),
)


@dataclass
class Region:
    """A structure of a seed: where it is and how wide its fields are."""

    kind: str
    offset: int
    length: int
    width: int  # field width for value writes (1, 2, 4, 8)


def _u(data: bytes, offset: int, width: int) -> int:
    chunk = data[offset : offset + width]
    return int.from_bytes(chunk.ljust(width, b"\0"), "big") if offset >= 0 else 0


def regions(data: bytes) -> list[Region]:
    """The structures of a (valid) seed image."""
    out = [Region("header", 0, 105, 0)]
    size = len(data)
    cluster_bits = _u(data, 20, 4)
    if not 9 <= cluster_bits <= 21:
        return out
    cluster = 1 << cluster_bits
    version = _u(data, 4, 4)
    header_length = _u(data, 100, 4) if version >= 3 else 72
    extl2 = version >= 3 and _u(data, 72, 8) & (1 << 4)
    # extensions
    pos = header_length
    while pos + 8 <= min(cluster, size):
        magic, length = _u(data, pos, 4), _u(data, pos + 4, 4)
        out.append(Region("ext-header", pos, 8, 4))
        if magic == 0:
            break
        out.append(Region(f"ext-{magic:#x}", pos + 8, length, 8 if magic in (0x23852875, 0x0537BE77) else 1))
        if magic == 0x6803F857:
            for e in range(length // 48):
                out.append(Region("feature-entry", pos + 8 + 48 * e, 48, 1))
        if magic == 0x23852875 and length >= 24:
            nb, dir_size, dir_off = _u(data, pos + 16, 4), _u(data, pos + 16 + 8, 8), _u(data, pos + 16 + 16, 8)
            out.append(Region("bitmap-directory", dir_off, dir_size, 4))
            p = dir_off
            for _ in range(min(nb, 64)):
                table_off, table_size = _u(data, p, 8), _u(data, p + 8, 4)
                name_size, extra = _u(data, p + 18, 2), _u(data, p + 20, 4)
                entry_size = (24 + name_size + extra + 7) // 8 * 8
                out.append(Region("bitmap-entry", p, entry_size, 4))
                out.append(Region("bitmap-table", table_off, table_size * 8, 8))
                p += entry_size
        if magic == 0x0537BE77 and length >= 16:
            luks_off, luks_len = _u(data, pos + 8, 8), _u(data, pos + 16, 8)
            out.append(Region("luks-header", luks_off, min(luks_len, 592), 4))
            out.append(Region("luks-area", luks_off, min(luks_len, 1 << 20), 1))
        pos += 8 + (length + 7) // 8 * 8
    backing_off, backing_len = _u(data, 8, 8), _u(data, 16, 4)
    if backing_off:
        out.append(Region("backing-name", backing_off, backing_len, 1))
    # L1 and L2
    l1_size, l1_off = _u(data, 36, 4), _u(data, 40, 8)
    out.append(Region("l1", l1_off, l1_size * 8, 8))
    l2_entry = 16 if extl2 else 8
    l2_count = cluster * 8 // l2_entry // 8

    def l2_tables(l1_offset: int, entries: int, tag: str) -> None:
        for i in range(min(entries, 4096)):
            l2 = _u(data, l1_offset + 8 * i, 8) & 0x00FFFFFFFFFFFE00
            if l2 and l2 < size:
                out.append(Region(f"{tag}l2", l2, cluster, 8))
                for j in range(0, min(l2_count, 512)):
                    entry = _u(data, l2 + j * l2_entry, 8)
                    if entry & (1 << 62):
                        x = 62 - (cluster_bits - 8)
                        host = entry & ((1 << x) - 1)
                        out.append(Region("compressed", host, 512, 1))
                    elif entry & 0x00FFFFFFFFFFFE00:
                        out.append(Region("data", entry & 0x00FFFFFFFFFFFE00, min(cluster, 4096), 8))

    l2_tables(l1_off, l1_size, "")
    # refcounts
    rt_off, rt_clusters = _u(data, 48, 8), _u(data, 56, 4)
    out.append(Region("reftable", rt_off, rt_clusters * cluster, 8))
    order = _u(data, 96, 4) if version >= 3 else 4
    width = max(1, (1 << order) // 8) if order <= 6 else 1
    for i in range(min(rt_clusters * cluster // 8, 1024)):
        block = _u(data, rt_off + 8 * i, 8) & ~0x1FF
        if block and block < size:
            out.append(Region("refblock", block, cluster, min(width, 8)))
    # snapshots
    nb_snap, snap_off = _u(data, 60, 4), _u(data, 64, 8)
    p = snap_off
    for _ in range(min(nb_snap, 64)):
        if p >= size:
            break
        sl1_off, sl1_size = _u(data, p, 8), _u(data, p + 8, 4)
        id_size, name_size, extra = _u(data, p + 12, 2), _u(data, p + 14, 2), _u(data, p + 36, 4)
        entry_size = (40 + extra + id_size + name_size + 7) // 8 * 8
        out.append(Region("snapshot-entry", p, entry_size, 4))
        out.append(Region("snapshot-l1", sl1_off, sl1_size * 8, 8))
        l2_tables(sl1_off, sl1_size, "snapshot-")
        p += entry_size
    return [r for r in out if 0 <= r.offset < size and r.length > 0]


# --- mutations --------------------------------------------------------------


def _put(buf: bytearray, offset: int, width: int, value: int) -> str:
    value &= (1 << (8 * width)) - 1
    if offset < 0 or offset + width > len(buf):
        return "noop"
    buf[offset : offset + width] = value.to_bytes(width, "big")
    return f"set {width}@{offset:#x}={value:#x}"


def mutate(seed: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    """One mutant of ``seed`` and the list of what was done to it."""
    buf = bytearray(seed)
    found = regions(seed)
    pointers = sorted({r.offset for r in found}) + [len(seed), len(seed) - 1, len(seed) + 1]
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        region = rng.choice(found)
        what = rng.random()
        if region.kind == "header" and what < 0.7:
            offset, width = rng.choice(HEADER_FIELDS)
        else:
            width = region.width or rng.choice((1, 2, 4, 8))
            slots = max(1, region.length // width)
            offset = region.offset + width * rng.randrange(slots)
        if what < 0.35:
            value = rng.choice(HOSTILE + (len(buf), len(buf) - 1, len(buf) + 1))
            if width == 8 and rng.random() < 0.3:  # keep flag bits: an offset-shaped lie
                value = (value & 0x00FFFFFFFFFFFE00) | (_u(bytes(buf), offset, 8) & 0xFF000000000001FF)
            done.append(f"{region.kind}: hostile " + _put(buf, offset, width, value))
        elif what < 0.55:
            target = rng.choice(pointers)
            if width == 8:
                target |= _u(bytes(buf), offset, 8) & 0xFF00000000000001
            done.append(f"{region.kind}: cross pointer " + _put(buf, offset, width, target))
        elif what < 0.8:
            bit = rng.randrange(max(1, min(region.length, len(buf) - region.offset)) * 8)
            byte = region.offset + bit // 8
            if byte < len(buf):
                buf[byte] ^= 1 << (bit % 8)
                done.append(f"{region.kind}: flip bit {bit % 8} of {byte:#x}")
        elif what < 0.9:
            count = rng.choice((1, 2, 8, 48))
            for _ in range(count):
                byte = region.offset + rng.randrange(max(1, region.length))
                if byte < len(buf):
                    buf[byte] = rng.choice((0, 0xFF, 0x0A, 0x0D, 0x1B, rng.randrange(256)))
            done.append(f"{region.kind}: {count} random bytes")
        else:
            cut = rng.choice((region.offset, region.offset + region.length // 2, region.offset + 1, len(buf) - 1))
            del buf[max(0, cut) :]
            done.append(f"truncate at {cut:#x}")
            if not buf:
                buf += seed[:8]
    return bytes(buf), done


# --- running one mutant -------------------------------------------------------


class Limit(Exception):
    """An operation passed the time bound."""


def _alarm(signum: int, frame: object) -> None:
    raise Limit("time")


class _Lib:
    """The library entry points, imported once per fuzzer process."""

    def __init__(self) -> None:
        from qcow2lint.config import Config, RuleSettings
        from qcow2lint.registry import INTERNAL_ERROR_CODE, load_registry

        self.registry = load_registry()
        rules = {rule.name: RuleSettings(True, rule.severity, rule.options) for rule in self.registry}
        self.config = Config(rules, source="fuzz")
        self.internal = INTERNAL_ERROR_CODE


def run_one(lib: _Lib, path: str, time_limit: float = TIME_LIMIT) -> list[str]:
    """Every check of one mutant; the list of failures (empty: it passed)."""
    from qcow2lint.reader import ImageError
    from qcow2lint.report import github, gitlab, junit, sarif
    from qcow2lint.report.dump import build_dump
    from qcow2lint.report.jsonreport import render_json
    from qcow2lint.report.text import render_text
    from qcow2lint.runner import lint_image

    failures: list[str] = []
    before = hashlib.sha256(Path(path).read_bytes()).hexdigest()

    def timed(name: str, call):  # type: ignore[no-untyped-def]
        signal.setitimer(signal.ITIMER_REAL, time_limit)
        start = time.monotonic()
        try:
            return call()
        except Limit:
            failures.append(f"time: {name} ran past {time_limit:g} s")
        except ImageError:
            return None
        except BaseException as exc:  # noqa: BLE001 -- that is what we look for
            tb = traceback.extract_tb(exc.__traceback__)[-1]
            failures.append(
                f"exception: {name}: {type(exc).__name__} at {Path(tb.filename).name}:{tb.lineno}: {str(exc)[:200]}"
            )
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            spent = time.monotonic() - start
            if spent > time_limit and not any(f.startswith(f"time: {name}") for f in failures):
                failures.append(f"time: {name} took {spent:.1f} s")
        return None

    def size_ok(name: str, text: object) -> None:
        if isinstance(text, str) and len(text) > OUTPUT_LIMIT:
            failures.append(f"output: {name} printed {len(text)} characters")

    report = timed("check --deep", lambda: lint_image(path, lib.config, lib.registry, True, True))
    if report is not None:
        internal = [f for f in report.findings if f.code == lib.internal]
        if internal:
            failures.append(f"internal-error: {internal[0].message[:300]}")
        if report.error:
            failures.append(f"exception: check reported: {report.error[:300]}")
        reports = [report]
        renders = {
            "text": lambda: render_text(report, statistics=True),
            "json": lambda: render_json(reports),
            "sarif": lambda: sarif.render_sarif(reports, lib.registry),
            "sarif-github": lambda: sarif.render_sarif(reports, lib.registry, github=True),
            "github": lambda: github.render_github(reports) + github.github_step_summary(reports),
            "gitlab": lambda: gitlab.render_gitlab(reports),
            "junit": lambda: junit.render_junit(reports, lib.registry),
        }
        for name, render in renders.items():
            size_ok(name, timed(f"render {name}", render))
    for as_json in (False, True):
        name = "dump --json" if as_json else "dump"
        dump = timed(name, lambda as_json=as_json: build_dump(path, as_json))
        if dump is not None:
            size_ok(name, dump.text)
            if dump.error is not None and not dump.error.strip():
                failures.append(f"exception: {name}: an empty error message")
    if hashlib.sha256(Path(path).read_bytes()).hexdigest() != before:
        failures.append("modified: the image bytes changed")
    return failures


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _vm_size() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _worker(
    lib: _Lib,
    seeds: dict[str, bytes],
    names: list[str],
    base_seed: int,
    first: int,
    count: int,
    workdir: Path,
    result_fd: int,
    time_limit: float,
) -> None:
    """Run mutants ``first .. first+count-1``; one line per mutant on ``result_fd``."""
    start_rss = _peak_rss()
    limit = _vm_size() + ADDRESS_SPACE_HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    out = os.fdopen(result_fd, "w", buffering=1)
    for index in range(first, first + count):
        rng = random.Random(f"{base_seed}:{index}")
        seed_name = rng.choice(names)
        data, done = mutate(seeds[seed_name], rng)
        path = workdir / f"mutant-{index}.qcow2"
        path.write_bytes(data)
        out.write(f"start {index}\n")
        failures = run_one(lib, str(path), time_limit)
        grown = _peak_rss() - start_rss
        if grown > MEMORY_LIMIT:
            failures.append(f"memory: peak RSS grew by {grown >> 20} MiB")
        line = "|".join([seed_name, "; ".join(done), *failures])
        out.write(f"done {index} {len(failures)} {line}\n")
        if failures:
            out.write(f"save {index} {path}\n")
        else:
            path.unlink()
        if grown > MEMORY_LIMIT:
            break  # the peak cannot go down: a fresh worker measures the next one
    out.close()
    os._exit(0)


def save_failure(path: Path, signature: str, detail: str, failures_dir: Path) -> Path:
    """Keep a failing input with its reproduction line."""
    failures_dir.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    kind = signature.split(":")[0]
    target = failures_dir / f"{kind}-{digest}.qcow2"
    shutil.copyfile(path, target)
    target.with_suffix(".txt").write_text(
        f"{detail}\nreproduce: python fuzz/fuzz.py --replay {os.path.relpath(target, HERE.parent)}\n"
    )
    return target


def signature_of(failure: str) -> str:
    """What makes two failures the same bug (kind and place, not values)."""
    parts = failure.split(":")
    if failure.startswith("exception"):
        return ":".join(parts[:3])
    if failure.startswith("internal-error"):
        message = failure.split("crashed", 1)
        return "internal-error:" + message[0][-80:] + (message[1].split(":")[1] if len(message) > 1 else "")
    return ":".join(parts[:2])[:80]


def fuzz(minutes: float, base_seed: int, time_limit: float, failures_dir: Path) -> int:
    """Fuzz for ``minutes``; returns the number of distinct failures."""
    seeds = build_seeds(HERE / "seeds")
    names = sorted(seeds)
    lib = _Lib()
    deadline = time.monotonic() + minutes * 60
    started = time.monotonic()
    index = 0
    total = 0
    kinds: Counter[str] = Counter()
    seen: dict[str, Path] = {}
    last_print = 0.0
    with tempfile.TemporaryDirectory(prefix="qcow2lint-fuzz-") as tmp:
        workdir = Path(tmp)
        while time.monotonic() < deadline:
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                try:
                    _worker(lib, seeds, names, base_seed, index, BATCH, workdir, write_fd, time_limit)
                finally:
                    os._exit(3)
            os.close(write_fd)
            current = None
            new: list[str] = []
            detail = ""
            with os.fdopen(read_fd) as results:
                for line in results:
                    word, number, rest = (line.rstrip("\n").split(" ", 2) + [""])[:3]
                    if word == "start":
                        current = int(number)
                    elif word == "done":
                        total += 1
                        index = int(number) + 1
                        current = None
                        count, detail = rest.split(" ", 1)
                        failures = detail.split("|")[2:] if int(count) else []
                        kinds.update(failure.split(":")[0] for failure in failures)
                        new = [sig for sig in dict.fromkeys(map(signature_of, failures)) if sig not in seen]
                    elif word == "save":
                        mutant = Path(rest)
                        if new:
                            saved = save_failure(mutant, new[0], detail, failures_dir)
                            for signature in new:
                                seen[signature] = saved
                                print(f"FAIL {signature}\n  {saved}", flush=True)
                        mutant.unlink(missing_ok=True)
            _, status = os.waitpid(pid, 0)
            if current is not None:  # the worker died inside a mutant
                total += 1
                index = current + 1
                how = (
                    f"signal {-os.waitstatus_to_exitcode(status)}"
                    if os.WIFSIGNALED(status)
                    else f"exit {os.waitstatus_to_exitcode(status)}"
                )
                kinds["crash"] += 1
                mutant = workdir / f"mutant-{current}.qcow2"
                signature = f"crash:{how}"
                if signature not in seen and mutant.exists():
                    seen[signature] = save_failure(
                        mutant, signature, f"worker died ({how}) on mutant {current}", failures_dir
                    )
                    print(f"FAIL {signature}\n  {seen[signature]}", flush=True)
                mutant.unlink(missing_ok=True)
            elif index == 0:
                raise SystemExit("the first worker produced no result")
            now = time.monotonic()
            if now - last_print > 30:
                last_print = now
                rate = total / (now - started)
                print(f"{total} mutants, {rate:.1f}/s, failures {dict(kinds) or 0}", flush=True)
    elapsed = time.monotonic() - started
    print(
        f"done: {total} mutants in {elapsed:.0f} s ({total / elapsed:.1f}/s); seed {base_seed}; "
        f"failing mutants by kind: {dict(kinds) or 'none'}; distinct failures: {len(seen)}"
    )
    for signature, where in seen.items():
        print(f"  {signature}: {where}")
    return len(seen)


def replay(path: Path, time_limit: float) -> int:
    """Run the checks on one saved input and print what failed."""
    lib = _Lib()
    signal.signal(signal.SIGALRM, _alarm)
    start_rss = _peak_rss()
    started = time.monotonic()
    failures = run_one(lib, str(path), time_limit)
    grown = _peak_rss() - start_rss
    print(f"{path}: {time.monotonic() - started:.2f} s, peak RSS +{grown >> 20} MiB")
    for failure in failures:
        print(f"  {failure}")
    print("  ok" if not failures else f"  {len(failures)} failure(s)")
    return 1 if failures else 0


def main() -> int:
    """Command line: fuzz for N minutes, or replay one input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--minutes", type=float, default=None, help="how long to run (default 1; differential: no limit)"
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the time)")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT, help="seconds per operation")
    parser.add_argument("--failures", type=Path, default=HERE / "failures")
    parser.add_argument("--replay", type=Path, help="run one saved input and print its failures")
    parser.add_argument(
        "--differential", action="store_true", help="compare with qemu-img check on single-edit mutants"
    )
    parser.add_argument("--mutants", type=int, default=1000, help="differential: how many mutants")
    parser.add_argument("--first", type=int, default=0, help="differential: index of the first mutant")
    parser.add_argument("--jobs", type=int, default=2, help="differential: worker processes")
    parser.add_argument("--misses", type=Path, default=HERE / "misses", help="differential: where misses go")
    args = parser.parse_args()
    if args.differential:
        import differential

        seed = args.seed if args.seed is not None else int(time.time())
        return differential.main(args.mutants, seed, args.jobs, args.misses, args.first, args.minutes)
    if args.replay is not None:
        return replay(args.replay, args.time_limit)
    seed = args.seed if args.seed is not None else int(time.time())
    minutes = args.minutes if args.minutes is not None else 1.0
    print(f"fuzzing for {minutes:g} min with seed {seed}", flush=True)
    return 1 if fuzz(minutes, seed, args.time_limit, args.failures) else 0


if __name__ == "__main__":
    sys.exit(main())
