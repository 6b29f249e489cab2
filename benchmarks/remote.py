"""Remote checks against a local check of the same file, in one run.

The 1 TiB image preallocated with ``qemu-img create -f qcow2 -o
preallocation=metadata`` (built as bench.py builds it, and shared with it)
is served over loopback HTTP by the tests' range server; moto's S3 server
(in this process) serves a smaller image of the same kind, since moto keeps
every object's bytes (a 1 TiB sparse file cannot be put into it). Each is
checked as a URL and as a local file, and the script prints the bytes
fetched against the metadata bytes the local check reads, the requests,
windows and rounds (docs/remote.md says how they are counted), and the wall
times.

Needs the ``remote`` extra and ``moto[server]`` (``pip install -e
'.[remote,remote-test]'``), ``qemu-img``, and a working tree (it imports
tests/rangeserver.py)::

    python3 benchmarks/remote.py                  # 1 TiB over HTTP, 1 GiB over S3
    python3 benchmarks/remote.py --s3-size 4G --rounds 3 --json /tmp/remote.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import bench  # noqa: E402
from rangeserver import RangeServer  # noqa: E402

import qcow2lint  # noqa: E402
import qcow2lint.reader  # noqa: E402
import qcow2lint.remote  # noqa: E402


def local_check(path: Path) -> tuple[float, int]:
    """Seconds of a local check (every rule) and the bytes it read."""
    opened: list[Any] = []
    original = qcow2lint.reader.open_source

    def recording(*args: Any, **kwargs: Any) -> Any:
        opened.append(original(*args, **kwargs))
        return opened[-1]

    qcow2lint.reader.open_source = recording  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        qcow2lint.lint(path, preset="pedantic")
        seconds = time.perf_counter() - start
    finally:
        qcow2lint.reader.open_source = original  # type: ignore[assignment]
    return seconds, sum(source.bytes_read for source in opened)


def remote_check(url: str, options: dict[str, Any] | None = None) -> tuple[float, qcow2lint.remote.FetchStatistics]:
    """Seconds of a check of ``url`` and what it fetched."""
    start = time.perf_counter()
    qcow2lint.lint(url, preset="pedantic", storage_options=options)
    return time.perf_counter() - start, qcow2lint.remote.history[-1]


def compare(label: str, path: Path, url: str, rounds: int, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row: the URL's figures against the local check's, medians over ``rounds``."""
    local_times, remote_times = [], []
    local_bytes, fetched = 0, None
    for _ in range(rounds):
        seconds, local_bytes = local_check(path)
        local_times.append(seconds)
        seconds, fetched = remote_check(url, options)
        remote_times.append(seconds)
    assert fetched is not None
    row = {
        "label": label,
        "file_size": path.stat().st_size,
        "metadata_bytes_local": local_bytes,
        "bytes_fetched": fetched.bytes_fetched,
        "ratio": fetched.bytes_fetched / local_bytes if local_bytes else None,
        "requests": fetched.requests,
        "windows": fetched.windows,
        "rounds": fetched.rounds,
        "unplanned": fetched.unplanned,
        "seconds_remote": statistics.median(remote_times),
        "seconds_local": statistics.median(local_times),
    }
    print(
        f"{label:<28} fetched {row['bytes_fetched'] / 2**20:8.1f} MiB / local metadata "
        f"{local_bytes / 2**20:8.1f} MiB = {row['ratio']:.3f}x  requests {row['requests']:4}  "
        f"windows {row['windows']:3}  rounds {row['rounds']}  unplanned {row['unplanned']}  "
        f"wall {row['seconds_remote']:6.2f} s (local {row['seconds_local']:6.2f} s)",
        flush=True,
    )
    return row


def s3_row(image: Path, rounds: int) -> dict[str, Any]:
    """The same comparison for ``image`` put into moto's S3 server."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        keys = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **keys)
        client.create_bucket(Bucket="bench")
        start = time.perf_counter()
        client.upload_file(str(image), "bench", image.name)
        print(f"[s3] put {image.stat().st_size / 2**30:.1f} GiB into moto in {time.perf_counter() - start:.1f} s")
        options = {"endpoint_url": endpoint, "key": "bench", "secret": "bench"}
        return compare(f"S3 (moto) {image.name}", image, f"s3://bench/{image.name}", rounds, options)
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/qcow2lint-bench"))
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds per row (the median is printed)")
    parser.add_argument("--s3-size", default="1G", help="virtual size of the preallocated image put into moto")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    recipe = bench.SCENARIOS["prealloc-1t"].image
    assert recipe is not None
    big = Path(bench.ensure_image("prealloc-1t", recipe, args.workdir, False).path)
    rows = []
    server = RangeServer(big.parent)
    try:
        rows.append(compare(f"HTTP {big.name}", big, server.url(big.name), args.rounds))
        print(f"[http] the server sent {server.body_bytes / 2**20:.1f} MiB in {server.requests} requests")
    finally:
        server.stop()
    with tempfile.TemporaryDirectory(dir=args.workdir) as scratch:
        small = Path(scratch) / f"prealloc-{args.s3_size.lower()}.qcow2"
        bench.build_prealloc(small, args.s3_size)
        rows.append(s3_row(small, args.rounds))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cpu": bench.cpu_model(), "pid": os.getpid()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
