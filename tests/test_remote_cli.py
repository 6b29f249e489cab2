"""What URLs do on the command line without a server: usage errors, the
missing extra, ``map``, and that local checks never import the remote
packages (tests/test_remote.py has the tests against real servers)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from harness import assert_one_line_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.qcow2"
REMOTE_PACKAGES = ("fsspec", "aiohttp", "s3fs", "botocore", "aiobotocore", "boto3")


def _in_process(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout


def test_a_local_check_imports_no_remote_package() -> None:
    code = f"""
import sys
from qcow2lint.entry import main
sys.argv = ["qcow2lint", "check", "--dump", "-f", "json", {str(DEMO)!r}]
try:
    main()
except SystemExit:
    pass
print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] in {REMOTE_PACKAGES!r} or m == "qcow2lint.remote"))
"""
    out = _in_process(code)
    assert out.splitlines()[-1] == "LOADED []"


def test_without_the_extra_a_url_is_one_line() -> None:
    # An entry of None in sys.modules makes the import fail as a missing package does.
    code = """
import sys
sys.modules["fsspec"] = None
from qcow2lint.entry import main
sys.argv = ["qcow2lint", "check", "https://user:pw@example.invalid/a.qcow2?sig=1"]
try:
    main()
except SystemExit as exc:
    print("EXIT", exc.code)
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "EXIT 2"
    assert result.stderr == (
        "qcow2lint: error: https://example.invalid/a.qcow2: reading URLs needs the remote extra: "
        "pip install 'qcow2lint[remote]'\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage-option", "novalue"], "--storage-option: expected KEY=VALUE, got 'novalue'"),
        (["--storage-option", "=x"], "--storage-option: expected KEY=VALUE, got '=x'"),
        (["--timeout", "0"], "--timeout: expected a number of seconds > 0, got '0'"),
        (["--timeout", "soon"], "--timeout: expected a number of seconds > 0, got 'soon'"),
        (["--timeout", "nan"], "--timeout: expected a number of seconds > 0, got 'nan'"),
    ],
)
@pytest.mark.parametrize("command", ["check", "dump"])
def test_bad_remote_options_are_usage_errors(command: str, args: list[str], message: str) -> None:
    result = run_cli(command, *args, "https://example.invalid/a.qcow2")
    assert_one_line_error(result)
    assert message in result.stderr


def test_map_of_a_url_is_one_line() -> None:
    result = run_cli("map", "https://u:secret@example.invalid/a.qcow2?sig=s3cr3t")
    assert_one_line_error(result)
    assert result.stderr == (
        "qcow2lint: error: https://example.invalid/a.qcow2: map reads local files only (check and dump read URLs)\n"
    )
