"""Images for the refusals the differential fuzzer found qcow2lint silent on.

Each builder writes one image into a directory with qemu-img and, where
qemu-img cannot make the defect, a byte patch, and returns its path and how
QEMU opens it (the signature of tests/test_qemu_refusals.py's builders).
Used by tests/test_qemu_holes.py and by the refusal rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import imagebuilder as ib

#: A builder: (directory, bases) -> (image path, how QEMU opens it).
Builder = Callable[[Path, Any], tuple[Path, ib.Access]]

EXT_BACKING_FORMAT = 0xE2792ACA


def end_marker_offset(path: Path) -> int:
    """Where the end-of-extensions marker of a v3 image is."""
    raw = path.read_bytes()
    offset = int.from_bytes(raw[100:104], "big")  # header_length
    while int.from_bytes(raw[offset : offset + 4], "big") != 0:
        offset += 8 + -(-int.from_bytes(raw[offset + 4 : offset + 8], "big") // 8) * 8
    return offset


def end_marker_length(length: int) -> Builder:
    """A v3 image whose end-of-extensions marker has length ``length``."""

    def build(directory: Path, bases: Any = None) -> tuple[Path, ib.Access]:
        path = ib.create(directory / f"end-marker-{length:x}.qcow2", "1M")
        ib.Qcow2Image(path).write_int(end_marker_offset(path) + 4, "I", length)
        return path, ib.PLAIN

    return build


def overlay(directory: Path, name: str, backing: str, fmt: str = "qcow2") -> Path:
    """An overlay of ``base.qcow2`` (which is created) naming ``backing``."""
    if not (directory / "base.qcow2").exists():
        ib.create(directory / "base.qcow2", "1M")
    path = directory / name
    ib.run_tool([ib.QEMU_IMG, "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", fmt, path, "1M"])
    return path


def backing_format(name: bytes) -> Builder:
    """An overlay of base.qcow2 whose backing format reads ``name`` (5 bytes:
    "qcow2" patched in place)."""
    assert len(name) == 5

    def build(directory: Path, bases: Any = None) -> tuple[Path, ib.Access]:
        path = overlay(directory, f"format-{name.hex()}.qcow2", "base.qcow2")
        image = ib.Qcow2Image(path)
        ext = image.extension(EXT_BACKING_FORMAT)
        assert ext.data == b"qcow2"
        image.write_bytes(ext.data_offset, name)
        return path, ib.PLAIN

    return build


def backing_name(name: str) -> Builder:
    """An overlay whose backing file name is ``name`` (base.qcow2 exists beside it)."""

    def build(directory: Path, bases: Any = None) -> tuple[Path, ib.Access]:
        return overlay(directory, "named.qcow2", name), ib.PLAIN

    return build


def data_file_missing(directory: Path, bases: Any = None) -> tuple[Path, ib.Access]:
    """An image whose external data file (an absolute name) was removed."""
    data = directory / "gone.raw"
    path = ib.create(directory / "data-file-missing.qcow2", "1M", {"data_file": str(data)})
    data.unlink()
    return path, ib.PLAIN


def data_file_directory(directory: Path, bases: Any = None) -> tuple[Path, ib.Access]:
    """An image whose external data file name (absolute) names a directory."""
    data = directory / "data.raw"
    path = ib.create(directory / "data-file-directory.qcow2", "1M", {"data_file": str(data)})
    data.unlink()
    data.mkdir()
    return path, ib.PLAIN


def data_file_name_empty(directory: Path, bases: Any = None) -> tuple[Path, ib.Access]:
    """An image whose external data file name starts with a NUL byte."""
    path = ib.create(directory / "data-file-empty.qcow2", "1M", {"data_file": str(directory / "data.raw")})
    image = ib.Qcow2Image(path)
    image.write_bytes(image.extension(0x44415441).data_offset, b"\0")
    return path, ib.PLAIN
