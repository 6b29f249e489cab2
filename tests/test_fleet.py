"""``check --scheduler`` and the DataFrame API on a Dask cluster.

Marked ``fleet`` (left out of the default run; ``.ci/run`` runs them with
``-m fleet`` after installing the ``fleet`` extra) and skipped with a reason
when dask.distributed is not installed.  One local cluster of two worker
processes serves the module; the tests that kill workers start their own
cluster through ``--scheduler local`` so that the plugin that kills is on
the workers' path.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import Bases, cli_argv, run_cli_bytes

from qcow2lint.fleet import STATS

# Looked up, not imported: collecting this file in the default run must not
# import Dask (importing it adds a finder of distributions to sys.meta_path,
# which turns the registry's cache off for the rest of that process).
pytestmark = [
    pytest.mark.fleet,
    pytest.mark.skipif(
        importlib.util.find_spec("distributed") is None,
        reason="the fleet extra (dask.distributed) is not installed",
    ),
]

BASES = ("v3", "v2", "extl2", "bitmaps", "snapshot")


def _make_fleet(base_images: Bases, directory: Path, count: int) -> list[Path]:
    """``count`` images: copies of the clean bases, broken copies (an L1
    reserved bit: an error finding) and files that are no image at all."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        kind = index % 7
        path = directory / f"img-{index:04d}.qcow2"
        if kind == 5:
            path.write_bytes(b"not an image\n")
        else:
            base_images.copy(BASES[kind % len(BASES)], directory, path.name)
            if kind == 6:
                image = ib.Qcow2Image(path)
                image.set_l1(PATCH_L1_INDEX, image.l1[PATCH_L1_INDEX] | 0x100)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local cluster of two worker processes (one thread each): its address."""
    import logging

    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        worker_dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def fleet(base_images: Bases, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """200 images, plus an argument that names no file (in the middle)."""
    paths = _make_fleet(base_images, tmp_path_factory.mktemp("fleet"), 200)
    return [*paths[:100], paths[0].parent / "missing.qcow2", *paths[100:]]


def test_scheduler_output_equals_jobs_output(fleet: list[Path], cluster: str, tmp_path: Path) -> None:
    json_args = ("check", "--format", "json", "--statistics", "--dump", *fleet)
    local = run_cli_bytes(*json_args, "--jobs", "2")
    remote = run_cli_bytes(*json_args, "--scheduler", cluster)
    assert local[0] == 2  # the missing argument
    assert remote == local
    document = json.loads(local[1])
    assert len(document["images"]) == 201
    assert document["summary"]["error"] > 0 and "dump" in document["images"][0]
    # text on the terminal and SARIF in a file, from one run each
    sarif_local, sarif_remote = tmp_path / "local.sarif", tmp_path / "remote.sarif"
    text_local = run_cli_bytes("check", "-f", "sarif", "-o", sarif_local, "--jobs", "2", *fleet)
    text_remote = run_cli_bytes("check", "-f", "sarif", "-o", sarif_remote, "--scheduler", cluster, *fleet)
    assert text_remote == text_local
    assert b"l1-reserved-bits" in text_local[1]
    assert sarif_remote.read_bytes() == sarif_local.read_bytes()


def test_scheduler_local_equals_jobs(fleet: list[Path]) -> None:
    args = ("check", "--format", "json", *fleet[:40])
    local = run_cli_bytes(*args, "--jobs", "2")
    fleet_run = run_cli_bytes(*args, "--jobs", "2", "--scheduler", "local")
    assert fleet_run == local
    assert b"Traceback" not in fleet_run[2]


def test_jsonl_on_a_cluster_streams_the_json_reports_entries(fleet: list[Path], cluster: str) -> None:
    document = json.loads(run_cli_bytes("check", "-f", "json", "--jobs", "2", *fleet)[1])
    code, out, _ = run_cli_bytes("check", "-f", "jsonl", "--scheduler", cluster, *fleet)
    assert code == 2
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[:-1] == document["images"]
    assert lines[-1] == {"tool": document["tool"], "summary": document["summary"]}


CRASH_PLUGIN = '''
"""Kills its own process on images named *crash*, and on images named
*once* while the file that QCOW2LINT_TEST_KILL_ONCE names exists (removed
first: the image kills one worker, once).  Tests only."""
import os
import signal

from qcow2lint.records import Header

NAME = "test-crash"
CODE = "X9999"
SEVERITY = "info"
SCOPE = Header


def check(header, ctx):
    name = os.path.basename(ctx.image.path)
    once = os.environ.get("QCOW2LINT_TEST_KILL_ONCE", "")
    if "crash" in name:
        os.kill(os.getpid(), signal.SIGKILL)
    if "once" in name and once and os.path.exists(once):
        os.unlink(once)
        os.kill(os.getpid(), signal.SIGKILL)
    return ()
'''


def _plugin_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    plugin = tmp_path / "plugin"
    dist = plugin / "test_crash_plugin-0.dist-info"
    dist.mkdir(parents=True)
    (plugin / "test_crash_plugin.py").write_text(CRASH_PLUGIN)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: test-crash-plugin\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[qcow2lint.rules]\ntest-crash = test_crash_plugin\n")
    return dict(
        os.environ,
        PYTHONPATH=str(plugin),
        NO_COLOR="1",
        # A task that killed one worker counts as killing: fewer restarts before the verdict.
        DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
        **extra,
    )


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cli_argv(), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_an_image_that_kills_its_workers_is_its_error_line(base_images: Bases, tmp_path: Path) -> None:
    images = _make_fleet(base_images, tmp_path / "images", 12)
    images[5] = base_images.copy("v3", images[5].parent, "img-0005-crash.qcow2")
    env = _plugin_env(tmp_path)
    proc = _run(["check", "-f", "json", "--scheduler", "local", "--jobs", "2", *map(str, images)], env)
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 2
    [line] = proc.stderr.splitlines()
    assert "img-0005-crash.qcow2" in line and "crashed" in line
    document = json.loads(proc.stdout)
    assert [image["path"] for image in document["images"]] == list(map(str, images))
    reference = json.loads(_run(["check", "-f", "json", *map(str, images[:5] + images[6:])], env).stdout)
    others = [image for index, image in enumerate(document["images"]) if index != 5]
    assert others == reference["images"]
    assert document["images"][5]["error"] == line.removeprefix("qcow2lint: error: ")


def test_a_worker_killed_once_loses_no_image(base_images: Bases, tmp_path: Path) -> None:
    images = _make_fleet(base_images, tmp_path / "images", 12)
    images[3] = base_images.copy("v3", images[3].parent, "img-0003-once.qcow2")
    flag = tmp_path / "kill-once"
    env = _plugin_env(tmp_path, QCOW2LINT_TEST_KILL_ONCE=str(flag))
    args = ["check", "-f", "json", "--statistics", *map(str, images)]
    reference = _run(args, env)  # the flag does not exist yet: nothing is killed
    flag.touch()
    env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "3"
    proc = _run([*args, "--scheduler", "local", "--jobs", "2"], env)
    assert not flag.exists(), "no worker was killed"
    assert "Traceback" not in proc.stderr
    assert (proc.returncode, proc.stdout) == (reference.returncode, reference.stdout)
    assert len(json.loads(proc.stdout)["images"]) == 12


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    image = tmp_path / "a.qcow2"
    image.write_bytes(b"x")
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, out, err = run_cli_bytes("check", "--scheduler", f"tcp://127.0.0.1:{port}", image)
    assert code == 2 and out == b""
    [line] = err.decode().splitlines()
    assert line.startswith("qcow2lint: error: --scheduler: cannot reach the scheduler tcp://127.0.0.1:")


# ---------------------------------------------------------------------------
# the DataFrame API
# ---------------------------------------------------------------------------


def _frames(inputs: list[Path], cluster: str, **options: Any) -> tuple[Any, Any]:
    import dask
    from distributed import Client

    import qcow2lint

    with Client(cluster, set_as_default=False) as client:
        findings, images = qcow2lint.lint_frames(inputs, client=client, **options)
        with dask.config.set(scheduler=client.get):
            return dask.compute(findings, images)


def _value(cell: Any) -> Any:
    """A frame's cell as JSON has it: null for pandas' missing values."""
    import pandas as pd

    return None if pd.isna(cell) else cell


def test_frames_hold_what_the_json_report_holds(fleet: list[Path], cluster: str) -> None:
    inputs = [fleet[0].parent, fleet[100]]  # a directory, and an argument naming no file
    document = json.loads(run_cli_bytes("check", "-f", "json", "--statistics", *map(str, inputs))[1])
    findings, images = _frames(inputs, cluster)
    assert list(images["path"]) == [image["path"] for image in document["images"]]
    assert len(images) == 201
    for row, image in zip(images.to_dict("records"), document["images"]):
        summary = image["summary"]
        assert [row[key] for key in ("errors", "warnings", "infos", "shown", "root_causes")] == [
            summary[key] for key in ("error", "warning", "info", "shown", "root_causes")
        ]
        assert _value(row["error"]) == image.get("error")
        stats = image.get("stats", {})
        assert {name: _value(row[name.replace("-", "_")]) for name in STATS} == {
            name: stats.get(name) for name in STATS
        }
    expected = [
        (image["path"], f["rule"], f["code"], f["severity"], f["offset"], f["location"], f["message"], f["caused_by"])
        for image in document["images"]
        for f in image["findings"]
    ]
    columns = ["path", "rule", "code", "severity", "offset", "location", "message", "caused_by"]
    rows = [tuple(map(_value, record)) for record in findings[columns].itertuples(index=False)]
    assert rows == expected and len(rows) > 0


def test_frames_write_parquet(fleet: list[Path], cluster: str, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow", reason="pyarrow is not installed")
    import dask
    import pandas as pd
    from distributed import Client

    import qcow2lint

    with Client(cluster, set_as_default=False) as client:
        findings, images = qcow2lint.lint_frames(fleet[:30], client=client, select=["l1-reserved-bits"])
        with dask.config.set(scheduler=client.get):
            dask.compute(
                findings.to_parquet(tmp_path / "findings", compute=False),
                images.to_parquet(tmp_path / "images", compute=False),
            )
    written = pd.read_parquet(tmp_path / "findings")
    assert set(written["rule"]) == {"l1-reserved-bits"}
    assert len(written) == sum(1 for path in fleet[:30] if int(path.stem[-4:]) % 7 == 6)
    assert len(pd.read_parquet(tmp_path / "images")) == 30


def test_frames_refuse_a_bad_selection_at_once(fleet: list[Path]) -> None:
    import qcow2lint

    with pytest.raises(qcow2lint.ConfigError, match="no-such-rule"):
        qcow2lint.lint_frames(fleet[:2], select="l1-reserved-bits,no-such-rule")


# URLs on the cluster: the workers read images over HTTP (the remote extra)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http_fleet(fleet: list[Path]) -> Iterator[tuple[Any, list[str]]]:
    """The fleet's first 30 images served by the remote tests' range server,
    and their URLs."""
    pytest.importorskip("fsspec", reason="the remote extra (fsspec, aiohttp) is not installed")
    pytest.importorskip("aiohttp", reason="the remote extra (fsspec, aiohttp) is not installed")
    from rangeserver import RangeServer

    server = RangeServer(fleet[0].parent)
    yield server, [server.url(path.name) for path in fleet[:30]]
    server.stop()


def test_workers_read_urls_as_a_local_run_does(http_fleet: tuple[Any, list[str]], cluster: str) -> None:
    server, urls = http_fleet
    args = ("check", "--format", "json", "--statistics", *urls)
    local = run_cli_bytes(*args, "--jobs", "2")
    on_cluster = run_cli_bytes(*args, "--scheduler", cluster)
    assert on_cluster == local
    assert local[0] == 1  # broken images and files that are no image: findings
    document = json.loads(local[1])
    assert [image["path"] for image in document["images"]] == urls
    assert any(f["rule"] == "l1-reserved-bits" for image in document["images"] for f in image["findings"])
    # Only metadata was fetched, by both runs: less than the images' bytes.
    served = sum((server.root / url.rsplit("/", 1)[1]).stat().st_size for url in urls)
    assert 0 < server.body_bytes < 2 * served


def test_frames_of_urls_hold_what_the_json_report_holds(http_fleet: tuple[Any, list[str]], cluster: str) -> None:
    _, urls = http_fleet
    document = json.loads(run_cli_bytes("check", "-f", "json", "--statistics", "--timeout", "20", *urls)[1])
    findings, images = _frames(urls, cluster, timeout=20.0)  # type: ignore[arg-type]
    assert list(images["path"]) == urls
    assert [_value(error) for error in images["error"]] == [image.get("error") for image in document["images"]]
    expected = [(image["path"], f["rule"], f["offset"]) for image in document["images"] for f in image["findings"]]
    assert [tuple(map(_value, row)) for row in findings[["path", "rule", "offset"]].itertuples(index=False)] == expected
    assert expected
