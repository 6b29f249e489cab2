"""The console entry point keeps freed memory for reuse (qcow2lint.heap)."""

import ctypes.util
import subprocess
import sys

import pytest

from qcow2lint.heap import reuse_freed_memory

GLIBC = sys.platform.startswith("linux") and (ctypes.util.find_library("c") or "").startswith("libc.so")


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds():
    assert reuse_freed_memory() is True


def test_the_entry_point_still_checks_an_image(tmp_path):
    image = tmp_path / "clean.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    done = subprocess.run(
        [sys.executable, "-c", "from qcow2lint.entry import main; main()", "check", str(image)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "no findings" in done.stdout
