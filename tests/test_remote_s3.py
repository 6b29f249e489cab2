"""Remote images in S3: moto's S3 server (ThreadedMotoServer, in this
process) through s3fs.  Marked ``remote`` like tests/test_remote.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import assert_one_line_error
from remotehelpers import build_served, run

pytestmark = pytest.mark.remote

for _module in ("fsspec", "aiohttp", "s3fs"):
    pytest.importorskip(_module, reason=f"the remote extra is not installed ({_module} is missing)")

import qcow2lint  # noqa: E402
import qcow2lint.remote  # noqa: E402

CLUSTER = 64 << 10


@pytest.fixture(scope="module")
def served(base_images, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of clean and broken images."""
    return build_served(base_images, tmp_path_factory.mktemp("served"))


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
            source.prefetch([(qcow2lint.remote.HEAD_BYTES, CLUSTER)], "tables")
    finally:
        source.close()
    assert env  # the same object reads cleanly once it stays put
    result = run("check", "s3://images/changing/a.qcow2", env=env)
    assert result.returncode == 0, result.stderr
