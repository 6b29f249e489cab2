#!/usr/bin/env python3
"""Issue 9's bounds, measured: hostile files of at most 64 MiB and sparse
terabyte files, each run through ``check --deep``, ``dump``, ``dump --json``
and ``map --deep -o PAGE.html`` (its output: the page); wall time, peak RSS
(``os.wait4``) and output size.

Standalone script (not a test), standard library only.  Targets:
every file <= 64 MiB: each command <= 10 s and <= 300 MB peak RSS, output
<= a few MiB (4 MiB here); a valid sparse 10 TiB file checked in < 150 MB.

    python benchmarks/bounds.py [--workdir DIR] [--qcow2lint qcow2lint] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import shlex
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MB = 1_000_000
MAX_SECONDS = 10.0
MAX_RSS_MB = 300.0
MAX_OUTPUT = 4 << 20
SPARSE_RSS_MB = 150.0


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def patch(path: Path, offset: int, fmt: str, value: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack(fmt, value))


def header_field(path: Path, offset: int, fmt: str) -> int:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]


# --- the hostile files ------------------------------------------------------


def sparse_10t(img: Path) -> None:
    """A valid header-only image, truncated to 10 TiB (a sparse file)."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(img), "1G")
    os.truncate(img, 10 << 40)


def sparse_10t_l1(img: Path) -> None:
    """Sparse 10 TiB with l1_size 2^28 (QEMU's cap is 2^22 entries)."""
    sparse_10t(img)
    patch(img, 36, ">I", 1 << 28)


def sparse_10t_reftable(img: Path) -> None:
    """Sparse 10 TiB with refcount_table_clusters 2^32-1."""
    sparse_10t(img)
    patch(img, 56, ">I", 0xFFFFFFFF)


def nb_snapshots_patched(img: Path) -> None:
    """The fuzzer's finding: nb_snapshots 0x200000, snapshot_offset 0."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=2M", str(img), "8M")
    sh("qemu-io", "-c", "write -P 0x33 0 4k", str(img))
    patch(img, 60, ">I", 0x200000)


def snapshots_65536(img: Path) -> None:
    """65,536 snapshot entries sharing one L1 table (QEMU's maximum)."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M")
    sh("qemu-io", "-c", "write -P 0x11 0 1M", str(img))
    sh("qemu-img", "snapshot", "-c", "s", str(img))
    offset = header_field(img, 64, ">Q")
    with open(img, "rb") as fh:
        fh.seek(offset)
        fixed = fh.read(40)
        id_size, name_size = struct.unpack(">HH", fixed[12:16])
        extra = struct.unpack(">I", fixed[36:40])[0]
        size = -(-(40 + extra + id_size + name_size) // 8) * 8
        fh.seek(offset)
        entry = fh.read(size).ljust(size, b"\0")  # the last entry's padding may be missing
    end = -(-img.stat().st_size // 65536) * 65536
    with open(img, "r+b") as fh:
        fh.seek(end)
        fh.write(entry * 65536)
    patch(img, 60, ">I", 65536)
    patch(img, 64, ">Q", end)


def snapshot_table_too_big(img: Path) -> None:
    """1,030 snapshot entries with 65,535-byte names (sparse zeros): a
    table over QCOW_MAX_SNAPSHOTS_SIZE (64 MiB) with few entries."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M")
    sh("qemu-io", "-c", "write -P 0x11 0 1M", str(img))
    l1_size, l1 = header_field(img, 36, ">I"), header_field(img, 40, ">Q")
    start = -(-img.stat().st_size // 65536) * 65536
    count, name_size = 1030, 65535
    step = -(-(40 + 16 + 8 + name_size) // 8) * 8
    fixed = struct.pack(">QIHHIIQII", l1, l1_size, 8, name_size, 0, 0, 0, 0, 16)
    with open(img, "r+b") as fh:
        for index in range(count):
            fh.seek(start + index * step)
            fh.write(fixed + bytes(16) + b"%08d" % index)
        fh.truncate(start + count * step)
    patch(img, 60, ">I", count)
    patch(img, 64, ">Q", start)


def deep_shared_compressed(img: Path) -> None:
    """One L2 table (262,144 entries, 2 MiB clusters) whose every entry names
    the same compressed cluster: --deep must decompress it once."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        with open(raw, "wb") as fh:
            fh.write(os.urandom(4096) * 512)
        sh("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=2M", str(raw), str(img))
    size_offset = 24
    patch(img, size_offset, ">Q", 512 << 30)  # one L2 table maps 512 GiB
    l1 = header_field(img, 40, ">Q")
    l2 = header_field(img, l1, ">Q") & 0x00FFFFFFFFFFFE00
    with open(img, "r+b") as fh:
        fh.seek(l2)
        first = fh.read(8)
        fh.seek(l2)
        fh.write(first * (2 << 20 >> 3))


def _many_l2_tables(img: Path, entry: Callable[[int, int], bytes]) -> None:
    """64 KiB clusters, 1024 L2 tables (8 M entries, 64 MiB of tables) whose
    entries ``entry(first payload's entry, index)`` builds."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        with open(raw, "wb") as fh:
            fh.write(os.urandom(4096) * 16)
        sh("qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", str(raw), str(img))
    tables, per_table = 1024, 65536 // 8
    l1 = header_field(img, 40, ">Q")
    l2 = header_field(img, l1, ">Q") & 0x00FFFFFFFFFFFE00
    first = header_field(img, l2, ">Q")
    end = -(-img.stat().st_size // 65536) * 65536
    with open(img, "r+b") as fh:
        fh.seek(l1)
        fh.write(b"".join(struct.pack(">Q", (1 << 63) | (end + i * 65536)) for i in range(tables)))
        fh.seek(end)
        for table in range(tables):
            fh.write(b"".join(entry(first, table * per_table + i) for i in range(per_table)))
    patch(img, 24, ">Q", tables * per_table * 65536)
    patch(img, 36, ">I", tables)


def deep_8m_shared(img: Path) -> None:
    """8 M L2 entries (1024 distinct L2 tables) naming one compressed payload."""
    _many_l2_tables(img, lambda first, i: struct.pack(">Q", first))


def deep_8m_distinct(img: Path) -> None:
    """8 M L2 entries naming 8 M distinct compressed payloads (offsets one
    byte apart, inside the file): --deep stops at its budget."""
    _many_l2_tables(img, lambda first, i: struct.pack(">Q", (first & ~((1 << 54) - 1)) | (0x10000 + i)))


def bitmaps_65535(img: Path) -> None:
    """65,535 bitmap directory entries (QEMU's maximum), copies of one
    sharing its bitmap table: a 2.5 MB file."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M")
    sh("qemu-img", "bitmap", "--add", str(img), "b0")
    with open(img, "rb") as fh:
        data = fh.read()
    position = struct.unpack_from(">I", data, 100)[0]  # header_length
    while True:
        kind, length = struct.unpack_from(">II", data, position)
        if kind in (0, 0x23852875):
            break
        position += 8 + -(-length // 8) * 8
    assert kind == 0x23852875, "no bitmaps extension"
    _, _, directory_size, directory = struct.unpack_from(">IIQQ", data, position + 8)
    entry = data[directory : directory + directory_size].ljust(-(-directory_size // 8) * 8, b"\0")
    end = -(-len(data) // 65536) * 65536
    count = 65535
    with open(img, "r+b") as fh:
        fh.seek(end)
        fh.write(entry * count)
        fh.seek(position + 8)
        fh.write(struct.pack(">IIQQ", count, 0, len(entry) * count, end))


SCENARIOS = {
    "sparse-10t": sparse_10t,
    "sparse-10t-l1": sparse_10t_l1,
    "sparse-10t-reftable": sparse_10t_reftable,
    "nb-snapshots-0x200000": nb_snapshots_patched,
    "snapshots-65536": snapshots_65536,
    "snapshot-table-too-big": snapshot_table_too_big,
    "deep-shared-compressed": deep_shared_compressed,
    "bitmaps-65535": bitmaps_65535,
    "deep-8m-shared": deep_8m_shared,
    "deep-8m-distinct": deep_8m_distinct,
}
COMMANDS = {
    "check --deep": ["check", "--deep"],
    "dump": ["dump"],
    "dump --json": ["dump", "--json"],
    # The map's page is written to a file: its size counts as the output.
    "map --deep": ["map", "--deep", "-o", "{page}"],
}


def measure(cmd: list[str]) -> tuple[float, float, float, int, int]:
    """Wall seconds, CPU seconds, peak RSS in MB, output bytes and exit code
    of one run (CPU time tells a loaded machine from a slow command)."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=out)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0, os.SEEK_END)
        cpu = usage.ru_utime + usage.ru_stime
        return wall, cpu, usage.ru_maxrss * 1024 / MB, out.tell(), os.waitstatus_to_exitcode(status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qcow2lint-bounds"))
    parser.add_argument("--qcow2lint", default="qcow2lint", help="command (default: qcow2lint)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    base = shlex.split(args.qcow2lint)
    failed = 0
    print(
        f"{'scenario':24} {'command':13} {'alloc MiB':>9} {'wall s':>7} {'CPU s':>6} {'RSS MB':>7} {'out KiB':>8} exit  ok"
    )
    for name in args.only or SCENARIOS:
        img = args.workdir / f"{name}.qcow2"
        if not img.exists():
            SCENARIOS[name](img)
        allocated = img.stat().st_blocks * 512 / (1 << 20)
        for label, command in COMMANDS.items():
            page = args.workdir / f"{name}.map.html"
            argv = [*base, *(part.replace("{page}", str(page)) for part in command), str(img)]
            page.unlink(missing_ok=True)
            wall, cpu, rss, output, code = measure(argv)
            if "{page}" in command:
                output += page.stat().st_size if page.exists() else 0
            limit_rss = SPARSE_RSS_MB if name == "sparse-10t" and label == "check --deep" else MAX_RSS_MB
            ok = wall <= MAX_SECONDS and rss <= limit_rss and output <= MAX_OUTPUT and code in (0, 1)
            failed += not ok
            print(
                f"{name:24} {label:13} {allocated:9.1f} {wall:7.2f} {cpu:6.2f} {rss:7.1f} {output / 1024:8.1f} "
                f"{code:4}  {'PASS' if ok else 'FAIL'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
