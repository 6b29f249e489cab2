"""What the remote tests share: the CLI in a child process, and a directory
of clean and broken images to serve."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import imagebuilder as ib
from harness import CliResult, cli_argv

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.qcow2"
#: Base images (tests/baseimages.py) served as they are.
SAME = ("v3", "v2", "extl2", "bitmaps", "snapshot", "luks")


def run(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> CliResult:
    """``qcow2lint ARGS`` in a child process."""
    environment = dict(os.environ, NO_COLOR="1", TERM="dumb", COLUMNS="200", PYTHONUTF8="1", **(env or {}))
    proc = subprocess.run(
        cli_argv() + [str(a) for a in args], capture_output=True, stdin=subprocess.DEVNULL, env=environment, timeout=120
    )
    return CliResult(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def build_served(base_images: object, root: Path) -> Path:
    """Clean and broken images in ``root``: the SAME bases, the demo, a
    compressed image, one cut by the end of the file, one with the corrupt
    bit, and a text file."""
    for name in SAME:
        base_images.copy(name, root)  # type: ignore[attr-defined]
    shutil.copyfile(DEMO, root / "demo.qcow2")
    ib.run_tool(["qemu-img", "convert", "-c", "-O", "qcow2", root / "v3.qcow2", root / "compressed.qcow2"])
    data = (root / "v3.qcow2").read_bytes()
    (root / "cut.qcow2").write_bytes(data[: len(data) // 2])
    corrupt = bytearray(data)
    corrupt[79] |= 2  # incompatible feature bit 1: corrupt
    (root / "corrupt.qcow2").write_bytes(bytes(corrupt))
    (root / "notes.txt").write_text("not an image\n")
    return root
