"""Remote images (docs/remote.md) against real servers: the range server of
tests/rangeserver.py over loopback HTTP, and moto's S3 server through s3fs.

Marked ``remote`` (deselected by default; ``.ci/run`` runs ``-m remote``
with the ``remote`` extra and moto installed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import CliResult, assert_one_line_error, cli_argv
from rangeserver import RangeServer

pytestmark = pytest.mark.remote

for _module in ("fsspec", "aiohttp", "s3fs"):
    pytest.importorskip(_module, reason=f"the remote extra is not installed ({_module} is missing)")

import qcow2lint  # noqa: E402
import qcow2lint.reader  # noqa: E402
import qcow2lint.remote  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.qcow2"
CLUSTER = 64 << 10
HEAD = qcow2lint.remote.HEAD_BYTES
#: What the same-verdict tests serve, as base names of the session's bases
#: (plus the images built below).
SAME = ("v3", "v2", "extl2", "bitmaps", "snapshot", "luks")


def run(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> CliResult:
    """``qcow2lint ARGS`` in a child process."""
    environment = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="200", PYTHONUTF8="1", **(env or {}))
    proc = subprocess.run(
        cli_argv() + [str(a) for a in args], capture_output=True, stdin=subprocess.DEVNULL, env=environment, timeout=120
    )
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.fixture(scope="module")
def served(base_images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of clean and broken images."""
    root = tmp_path_factory.mktemp("served")
    for name in SAME:
        base_images.copy(name, root)
    shutil.copyfile(DEMO, root / "demo.qcow2")
    # compressed clusters
    ib.run_tool(["qemu-img", "convert", "-c", "-O", "qcow2", root / "v3.qcow2", root / "compressed.qcow2"])
    # cut by the end of the file: tables past EOF
    data = (root / "v3.qcow2").read_bytes()
    (root / "cut.qcow2").write_bytes(data[: len(data) // 2])
    # the corrupt bit (incompatible feature bit 1) set
    corrupt = bytearray(data)
    corrupt[79] |= 2
    (root / "corrupt.qcow2").write_bytes(bytes(corrupt))
    # two mostly empty files beside them
    (root / "notes.txt").write_text("not an image\n")
    return root


IMAGES = (*SAME, "demo", "compressed", "cut", "corrupt")


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


# --- S3 through moto ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_s3(served: Path) -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 with a bucket of images; the
    environment a client needs (credentials and endpoint)."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    import boto3
    from moto.server import ThreadedMotoServer

    motoserver = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    motoserver.start()
    host, port = motoserver.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **_keys(env))
    client.create_bucket(Bucket="images")
    for key, name in (
        ("prefix/clean.qcow2", "v3"),
        ("prefix/broken.qcow2", "demo"),
        ("prefix/disk.img", "bitmaps"),  # found by its magic
        ("prefix/sub/snap.qcow2", "snapshot"),
        ("other/cut.qcow2", "cut"),
    ):
        client.upload_file(str(served / f"{name}.qcow2"), "images", key)
    client.put_object(Bucket="images", Key="prefix/notes.txt", Body=b"not an image\n")
    yield {**env, "ENDPOINT": endpoint}
    motoserver.stop()


def _keys(env: dict[str, str]) -> dict[str, str]:
    return {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}


def _s3_env(moto_s3: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in moto_s3.items() if key != "ENDPOINT"}


def test_s3_prefix_is_listed_and_checked_like_a_directory(moto_s3: dict[str, str], served: Path) -> None:
    endpoint = f"endpoint_url={moto_s3['ENDPOINT']}"
    result = run("check", "-f", "json", "--storage-option", endpoint, "s3://images/prefix/", env=_s3_env(moto_s3))
    images = json.loads(result.stdout)["images"]
    assert [image["path"] for image in images] == [
        "s3://images/prefix/broken.qcow2",
        "s3://images/prefix/clean.qcow2",
        "s3://images/prefix/disk.img",
        "s3://images/prefix/sub/snap.qcow2",
    ]
    assert result.returncode == 1  # demo.qcow2 has an error
    local = json.loads(run("check", "-f", "json", served / "demo.qcow2").stdout)["images"][0]
    assert images[0]["findings"] == local["findings"]
    assert all(not image["findings"] for image in images[1:])
    excluded = run(
        "check", "-f", "json", "--storage-option", endpoint, "--exclude", "*.img", "s3://images/prefix/",
        env=_s3_env(moto_s3),
    )  # fmt: skip
    assert "disk.img" not in excluded.stdout and "clean.qcow2" in excluded.stdout


def test_s3_endpoint_from_the_environment(moto_s3: dict[str, str], served: Path) -> None:
    env = {**_s3_env(moto_s3), "AWS_ENDPOINT_URL": moto_s3["ENDPOINT"]}
    result = run("check", "-f", "json", "s3://images/other/cut.qcow2", env=env)
    local = run("check", "-f", "json", served / "cut.qcow2")
    assert result.returncode == local.returncode == 1
    assert result.stdout == local.stdout.replace(str(served / "cut.qcow2"), "s3://images/other/cut.qcow2")
    dumped = run("dump", "s3://images/prefix/clean.qcow2", env=env)
    assert dumped.stdout == run("dump", served / "v3.qcow2").stdout


def test_s3_missing_key_is_one_line(moto_s3: dict[str, str]) -> None:
    env = {**_s3_env(moto_s3), "AWS_ENDPOINT_URL": moto_s3["ENDPOINT"]}
    result = run("check", "s3://images/prefix/nothing.qcow2", env=env)
    assert_one_line_error(result)
    assert result.stderr == "qcow2lint: error: s3://images/prefix/nothing.qcow2: no such object\n"


def test_s3_wrong_credentials_are_one_line(moto_s3: dict[str, str]) -> None:
    from moto import settings

    env = {**_s3_env(moto_s3), "AWS_ENDPOINT_URL": moto_s3["ENDPOINT"], "AWS_SECRET_ACCESS_KEY": "wrong-secret"}
    previous = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # the server now checks every request's signature
    try:
        result = run("check", "s3://images/prefix/clean.qcow2", env=env)
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = previous
    assert_one_line_error(result)
    assert result.stderr.startswith("qcow2lint: error: s3://images/prefix/clean.qcow2: access denied")
    assert "wrong-secret" not in result.stderr


def test_s3_image_changed_between_requests_is_refused_by_if_match(moto_s3: dict[str, str], served: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_s3["ENDPOINT"], region_name="us-east-1", **_keys(moto_s3))
    client.upload_file(str(served / "snapshot.qcow2"), "images", "changing/a.qcow2")
    env = {**_s3_env(moto_s3), "AWS_ENDPOINT_URL": moto_s3["ENDPOINT"]}
    options = {"endpoint_url": moto_s3["ENDPOINT"], "key": "testing", "secret": "testing"}
    source = qcow2lint.remote.open_remote("s3://images/changing/a.qcow2", options)
    try:
        client.upload_file(str(served / "v3.qcow2"), "images", "changing/a.qcow2")
        with pytest.raises(qcow2lint.remote.RemoteError, match="the image changed while being read"):
            source.prefetch([(HEAD, CLUSTER)], "tables")
    finally:
        source.close()
    assert env  # the same object reads cleanly once it stays put
    result = run("check", "s3://images/changing/a.qcow2", env=env)
    assert result.returncode == 0, result.stderr
