"""Remote images (docs/remote.md) against real servers: the range server of
tests/rangeserver.py over loopback HTTP, and moto's S3 server through s3fs.

Marked ``remote`` (deselected by default; ``.ci/run`` runs ``-m remote``
with the ``remote`` extra and moto installed).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import assert_one_line_error
from rangeserver import RangeServer
from remotehelpers import DEMO, SAME, build_served, run

pytestmark = pytest.mark.remote

for _module in ("fsspec", "aiohttp", "s3fs"):
    pytest.importorskip(_module, reason=f"the remote extra is not installed ({_module} is missing)")

import qcow2lint  # noqa: E402
import qcow2lint.reader  # noqa: E402
import qcow2lint.remote  # noqa: E402

HEAD = qcow2lint.remote.HEAD_BYTES


IMAGES = (*SAME, "demo", "compressed", "cut", "corrupt")


@pytest.fixture(scope="module")
def served(base_images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of clean and broken images."""
    return build_served(base_images, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(served: Path) -> Iterator[RangeServer]:
    started = RangeServer(served)
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def _clean_server(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").reset()


def _urls(server: RangeServer, names: tuple[str, ...]) -> list[str]:
    return [server.url(f"{name}.qcow2") for name in names]


def _paths(served: Path, names: tuple[str, ...]) -> list[str]:
    return [str(served / f"{name}.qcow2") for name in names]


def _as_urls(text: str, served: Path, server: RangeServer, names: tuple[str, ...]) -> str:
    for path, url in zip(_paths(served, names), _urls(server, names)):
        text = text.replace(f"file://{path}", url).replace(path, url)
    return text


# --- the same verdict ---------------------------------------------------------------


@pytest.mark.parametrize("output", ["json", "text", "sarif", "junit"])
def test_check_url_reports_what_a_local_check_reports(server: RangeServer, served: Path, output: str) -> None:
    local = run("check", "--statistics", "-f", output, *_paths(served, IMAGES))
    remote = run("check", "--statistics", "-f", output, *_urls(server, IMAGES))
    assert local.returncode == remote.returncode == 1
    assert remote.stderr == _as_urls(local.stderr, served, server, IMAGES)
    assert remote.stdout == _as_urls(local.stdout, served, server, IMAGES)
    if output == "json":
        images = json.loads(remote.stdout)["images"]
        assert [image["path"] for image in images] == _urls(server, IMAGES)
        assert all(image.get("error") is None for image in images)


def test_deep_and_jobs_give_the_local_verdict(server: RangeServer, served: Path) -> None:
    names = ("compressed", "demo", "bitmaps")
    local = run("check", "--deep", "-f", "json", *_paths(served, names))
    remote = run("check", "--deep", "-j", "2", "-f", "json", *_urls(server, names))
    assert (remote.returncode, remote.stdout) == (local.returncode, _as_urls(local.stdout, served, server, names))


@pytest.mark.parametrize("name", ["v3", "bitmaps", "luks", "demo", "cut"])
@pytest.mark.parametrize("form", [(), ("--json",), ("--json-document",)])
def test_dump_url_is_byte_identical(server: RangeServer, served: Path, name: str, form: tuple[str, ...]) -> None:
    local = run("dump", *form, served / f"{name}.qcow2")
    remote = run("dump", *form, server.url(f"{name}.qcow2"))
    assert remote.returncode == local.returncode
    assert remote.stdout == local.stdout
    assert remote.stderr == local.stderr.replace(str(served / f"{name}.qcow2"), server.url(f"{name}.qcow2"))


def test_api_reads_and_lints_urls(server: RangeServer, served: Path) -> None:
    url = server.url("snapshot.qcow2")
    with qcow2lint.read(url, timeout=5) as remote, qcow2lint.read(served / "snapshot.qcow2") as local:
        assert remote.image.header == local.image.header
        assert remote.image.path == url
        assert [b.offsets.tolist() for b in remote.l2_batches()] == [b.offsets.tolist() for b in local.l2_batches()]
    report = qcow2lint.lint(server.url("demo.qcow2"))
    assert [f.rule for f in report.findings] == [f.rule for f in qcow2lint.lint(DEMO).findings]
    with pytest.raises(qcow2lint.ImageError, match="no such object"):
        qcow2lint.lint(server.url("missing.qcow2"))


# --- only metadata --------------------------------------------------------------------


def _local_bytes(path: Path, monkeypatch: pytest.MonkeyPatch, deep: bool = False) -> int:
    """The bytes a local check of ``path`` reads (LocalSource counts them)."""
    opened: list[object] = []
    original = qcow2lint.reader.open_source

    def recording(*args: object, **kwargs: object) -> object:
        source = original(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(source)
        return source

    monkeypatch.setattr(qcow2lint.reader, "open_source", recording)
    qcow2lint.lint(path, deep=deep, preset="pedantic")
    monkeypatch.undo()
    return sum(getattr(source, "bytes_read", 0) for source in opened)


@pytest.mark.parametrize("name", IMAGES)
def test_only_metadata_is_fetched_in_few_rounds(
    server: RangeServer, served: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _local_bytes(served / f"{name}.qcow2", monkeypatch)
    server.reset()
    qcow2lint.lint(server.url(f"{name}.qcow2"), preset="pedantic")
    statistics = qcow2lint.remote.history[-1]
    assert statistics.bytes_fetched == server.body_bytes
    assert server.body_bytes <= 1.1 * local + HEAD
    assert statistics.rounds <= 6
    assert statistics.requests == server.requests
    if name not in ("cut", "demo", "corrupt"):  # ordinary images: every read was planned
        assert statistics.unplanned == 0


def test_deep_fetches_the_payloads_in_planned_rounds(
    server: RangeServer, served: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = _local_bytes(served / "compressed.qcow2", monkeypatch, deep=True)
    server.reset()
    qcow2lint.lint(server.url("compressed.qcow2"), deep=True)
    statistics = qcow2lint.remote.history[-1]
    assert server.body_bytes <= 1.1 * local + HEAD
    assert statistics.unplanned == 0 and statistics.rounds <= 7


# --- every response checked --------------------------------------------------------------


@pytest.fixture(scope="module")
def big(served: Path) -> Path:
    """A 1 GiB file (sparse): an image followed by zeros."""
    path = served / "big.qcow2"
    shutil.copyfile(served / "v3.qcow2", path)
    os.truncate(path, 1 << 30)
    return path


def test_a_server_that_ignores_range_is_refused_before_the_download(server: RangeServer, big: Path) -> None:
    server.ignore_range = True
    result = run("check", server.url("big.qcow2"))
    assert_one_line_error(result)
    assert result.stderr == (
        f"qcow2lint: error: {server.url('big.qcow2')}: the server ignored the Range request (HTTP 200): "
        "qcow2lint reads only an image's metadata and will not download it\n"
    )
    assert server.requests == 1
    assert server.body_bytes < 64 << 20  # what the socket buffers took, not the gigabyte


@pytest.mark.parametrize(
    ("fault", "count", "message"),
    [
        ("unavailable", 2, None),
        ("drop", 2, None),
        ("unavailable", 9, "HTTP 503 Service Unavailable (4 tries)"),
        ("drop", 9, "connection failed: "),
    ],
)
def test_transient_faults_are_retried_a_bounded_number_of_times(
    server: RangeServer, served: Path, fault: str, count: int, message: str | None
) -> None:
    setattr(server, fault, count)
    result = run("check", "-f", "json", server.url("v3.qcow2"))
    if message is None:
        assert result.returncode == 0, result.stderr
        local = run("check", "-f", "json", served / "v3.qcow2")
        assert result.stdout == local.stdout.replace(str(served / "v3.qcow2"), server.url("v3.qcow2"))
    else:
        assert_one_line_error(result)
        assert f"qcow2lint: error: {server.url('v3.qcow2')}: {message}" in result.stderr
        assert result.stderr.rstrip().endswith("(4 tries)")
        # aiohttp itself sends a request again, once, when a kept-alive
        # connection closes before the answer: 4 tries, 4 to 8 requests.
        assert 4 <= server.requests <= (8 if fault == "drop" else 4)


def test_a_stalled_server_times_out(server: RangeServer) -> None:
    server.stall = 9
    result = run("check", "--timeout", "0.2", server.url("v3.qcow2"))
    assert_one_line_error(result)
    assert result.stderr == f"qcow2lint: error: {server.url('v3.qcow2')}: no response within 0.2 s (4 tries)\n"


def test_an_image_that_changes_while_being_read_is_one_error(server: RangeServer) -> None:
    server.change_etag_after = 2
    result = run("check", server.url("snapshot.qcow2"))
    assert_one_line_error(result)
    assert f"{server.url('snapshot.qcow2')}: the image changed while being read (ETag " in result.stderr
    assert "findings" not in result.stdout


def test_without_etag_size_and_last_modified_identify_the_image(server: RangeServer, served: Path) -> None:
    server.no_etag = True
    result = run("check", server.url("v3.qcow2"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("fault", "kind"), [("short_body", "short"), ("long_body", "long")])
def test_a_body_of_the_wrong_length_is_an_error(server: RangeServer, fault: str, kind: str) -> None:
    setattr(server, fault, True)
    result = run("check", server.url("v3.qcow2"))
    assert_one_line_error(result)
    assert f"bytes for the 65536-byte range at 0x0 (a {kind} body)" in result.stderr


def test_a_missing_object_is_one_line(server: RangeServer) -> None:
    result = run("check", server.url("nothing.qcow2"))
    assert_one_line_error(result)
    assert result.stderr == f"qcow2lint: error: {server.url('nothing.qcow2')}: no such object (HTTP 404)\n"
    dumped = run("dump", server.url("nothing.qcow2"))
    assert_one_line_error(dumped)


# --- no credentials in any output -----------------------------------------------------------


@pytest.mark.parametrize("output", ["text", "json", "sarif", "github", "gitlab", "junit", "sarif-github"])
def test_no_credential_appears_in_any_output(server: RangeServer, output: str) -> None:
    port = server.url("").split(":")[2].rstrip("/")
    secret = f"http://alice:hunter2@127.0.0.1:{port}/demo.qcow2?X-Amz-Signature=s3cr3t&token=t0k3n#fr4gs3cret"
    missing = f"http://alice:hunter2@127.0.0.1:{port}/nothing.qcow2?X-Amz-Signature=s3cr3t"
    result = run("check", "--dump", "-f", output, secret, missing)
    assert result.returncode == 2
    everything = result.stdout + result.stderr
    for word in ("hunter2", "alice", "s3cr3t", "t0k3n", "fr4gs3cret", "X-Amz"):
        assert word not in everything
    assert "/demo.qcow2" in result.stdout
    assert f"127.0.0.1:{port}/nothing.qcow2: no such object" in result.stderr


def test_display_name_and_redact_drop_secrets() -> None:
    from qcow2lint.source import display_name, redact

    assert display_name("s3://bucket/key.qcow2?versionId=1") == "s3://bucket/key.qcow2"
    assert display_name("https://u:p@[::1]:8443/a?sig=1#x") == "https://[::1]:8443/a"
    text = redact("Cannot connect to host https://u:p@h/a?sig=SECRET ssl:default")
    assert "SECRET" not in text and "u:p" not in text and "https://h/a" in text


def test_any_fsspec_protocol_reads_through_cat_ranges(served: Path) -> None:
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.pipe("/qcow2lint-test/images/bitmaps.qcow2", (served / "bitmaps.qcow2").read_bytes())
    memory.pipe("/qcow2lint-test/images/other.img", (served / "demo.qcow2").read_bytes())
    memory.pipe("/qcow2lint-test/images/notes.txt", b"not an image")
    try:
        report = qcow2lint.lint("memory://qcow2lint-test/images/bitmaps.qcow2")
        local = qcow2lint.lint(served / "bitmaps.qcow2")
        assert report.findings == local.findings and report.path == "memory://qcow2lint-test/images/bitmaps.qcow2"
        statistics = qcow2lint.remote.history[-1]
        assert statistics.unplanned == 0 and statistics.rounds <= 6
        from qcow2lint.inputs import expand

        assert expand(["memory://qcow2lint-test/images/"]) == [
            "memory://qcow2lint-test/images/bitmaps.qcow2",
            "memory://qcow2lint-test/images/other.img",
        ]
    finally:
        memory.rm("/qcow2lint-test", recursive=True)


def test_an_unknown_protocol_is_one_line() -> None:
    result = run("check", "nosuchprotocol://host/a.qcow2")
    assert_one_line_error(result)
    assert result.stderr == (
        "qcow2lint: error: nosuchprotocol://host/a.qcow2: unknown protocol nosuchprotocol:// "
        "(no fsspec filesystem for it)\n"
    )
