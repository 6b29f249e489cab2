"""Images for the untrusted-image profile (tests/test_untrusted.py, and the
LUKS stripes row of tests/test_qemu_refusals.py): made by qemu-img (7.2),
the hostile ones with a few bytes patched in.  Nothing here runs qemu-img
with a key on a hostile image."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import qcow2lint

EXT_BACKING_FORMAT = 0xE2792ACA
EXT_DATA_FILE = 0x44415441
INCOMPAT_DATA_FILE = 1 << 2
SECRET = ["--object", "secret,id=sec0,data=abc"]
JSON_SHADOW = 'json:{"driver":"raw","file":{"driver":"file","filename":"/etc/shadow"}}'
TIB = 1 << 40


# --- building images -----------------------------------------------------------


def qemu_img(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, timeout=300, cwd=cwd)


def create(path: Path, size: str = "64M", options: str = "", *extra: str) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", *(["-o", options] if options else []), *extra, str(path), size)
    return path


def poke(path: Path, offset: int, fmt: str, value: int | tuple[int, ...]) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(struct.pack(fmt, *(value if isinstance(value, tuple) else (value,))))


def header_u32(path: Path, offset: int) -> int:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return struct.unpack(">I", handle.read(4))[0]


def rewrite_extensions(path: Path, change: Callable[[list[tuple[int, bytes]]], list[tuple[int, bytes]]]) -> None:
    """Re-lay the header extensions of cluster 0 after ``change`` edits the list."""
    with open(path, "r+b") as handle:
        head = handle.read(1 << 16)
        version = struct.unpack_from(">I", head, 4)[0]
        backing_offset = struct.unpack_from(">Q", head, 8)[0]
        start = 72 if version == 2 else struct.unpack_from(">I", head, 100)[0]
        position, extensions = start, []
        while True:
            magic, length = struct.unpack_from(">II", head, position)
            if magic == 0:
                break
            extensions.append((magic, head[position + 8 : position + 8 + length]))
            position += 8 + -(-length // 8) * 8
        area = (
            b"".join(
                struct.pack(">II", magic, len(data)) + data + b"\0" * (-len(data) % 8)
                for magic, data in change(extensions)
            )
            + b"\0" * 8
        )
        end = backing_offset or (1 << struct.unpack_from(">I", head, 20)[0])
        assert start + len(area) <= end, "the extensions do not fit"
        handle.seek(start)
        handle.write(area + b"\0" * (end - start - len(area)) if not backing_offset else area)


def set_data_file_name(path: Path, name: bytes) -> None:
    rewrite_extensions(path, lambda exts: [(m, d) for m, d in exts if m != EXT_DATA_FILE] + [(EXT_DATA_FILE, name)])


def drop_backing_format(path: Path) -> None:
    rewrite_extensions(path, lambda exts: [(m, d) for m, d in exts if m != EXT_BACKING_FORMAT])


def luks_offsets(path: Path) -> SimpleNamespace:
    with qcow2lint.read(path) as image_file:
        luks = image_file.image.encryption.luks
        return SimpleNamespace(
            header=luks.file_offset, slot0=luks.key_slots[0].file_offset, slot1=luks.key_slots[1].file_offset
        )


class Builder:
    """Builds each named image once, in one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, Path] = {}

    def __getitem__(self, name: str) -> Path:
        if name not in self.cache:
            path = self.root / f"{name}.qcow2"
            RECIPES[name](self, path)
            self.cache[name] = path
        return self.cache[name]

    # recipes -------------------------------------------------------------------

    def plain(self, path: Path) -> None:
        create(path)

    def overlay(self, path: Path, name: str, fmt: str = "qcow2") -> None:
        create(path, "64M", "", "-u", "-b", "base.qcow2", "-F", "qcow2")
        if name != "base.qcow2" or fmt != "qcow2":
            qemu_img("rebase", "-u", "-b", name, "-F", fmt, str(path))

    def data_file(self, path: Path, name: bytes) -> None:
        create(path, "64M", f"data_file={self.root / (path.stem + '.raw')}")
        set_data_file_name(path, name)

    def luks(self, path: Path, iter_time: int = 0) -> None:
        """A LUKS image; iter_time 0 means qemu-img's default (2000 ms)."""
        options = "encrypt.format=luks,encrypt.key-secret=sec0"
        if iter_time:
            options += f",encrypt.iter-time={iter_time}"
        # qemu-img measures PBKDF2 speed by CPU time first; on a loaded machine
        # a short iter-time can fail with "Unable to get accurate CPU usage".
        for attempt in range(5):
            try:
                create(path, "64M", options, *SECRET)
                return
            except subprocess.CalledProcessError:
                path.unlink(missing_ok=True)
                if attempt == 4:
                    raise

    def luks_patched(self, path: Path, field: str, value: int) -> None:
        """A copy of the fast LUKS image with one field of its header changed."""
        shutil.copyfile(self["luks-fast"], path)
        where = luks_offsets(path)
        offset = {
            "slot0.iterations": where.slot0 + 4,
            "mk.iterations": where.header + 164,
            "slot0.stripes": where.slot0 + 44,
            "slot1.active": where.slot1,
            "slot1.iterations": where.slot1 + 4,
        }[field]
        poke(path, offset, ">I", value)


def _luks_three_slots(b: Builder, path: Path) -> None:
    """Three active slots at 70M iterations each: each within max-iterations,
    together above max-unlock-iterations.  Slots 1 and 2 keep the key
    material offsets qemu-img laid out for them."""
    shutil.copyfile(b["luks-fast"], path)
    with qcow2lint.read(path) as image_file:
        slots = [slot.file_offset for slot in image_file.image.encryption.luks.key_slots[:3]]
    for offset in slots:
        poke(path, offset, ">II", (0x00AC71F3, 70_000_000))


def _written(b: Builder, path: Path, *options: str) -> None:
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as handle:
        handle.write(os.urandom(1 << 20) + b"\x5a" * (1 << 20))
    qemu_img("convert", "-f", "raw", "-O", "qcow2", *options, str(raw), str(path))


def _with_snapshots(b: Builder, path: Path) -> None:
    create(path)
    qemu_img("snapshot", "-c", "one", str(path))
    qemu_img("snapshot", "-c", "two", str(path))


def _with_bitmaps(b: Builder, path: Path) -> None:
    create(path)
    qemu_img("bitmap", "--add", str(path), "b0")
    qemu_img("bitmap", "--add", "-g", "512", str(path), "fine")


def _incompat_unknown(b: Builder, path: Path) -> None:
    create(path)
    poke(path, 72, ">Q", 1 << 5)


def _empty_backing_name(b: Builder, path: Path) -> None:
    create(path)
    poke(path, 8, ">Q", 0x800)  # backing_file_offset set, backing_file_size left 0


RECIPES: dict[str, Callable[[Builder, Path], None]] = {
    # clean images: exit 0 under untrusted
    "v3": Builder.plain,
    "v2": lambda b, p: create(p, "64M", "compat=0.10"),
    "cluster-512": lambda b, p: create(p, "64M", "cluster_size=512"),
    "cluster-2m": lambda b, p: create(p, "64M", "cluster_size=2M"),
    "refcount-64": lambda b, p: create(p, "64M", "refcount_bits=64"),
    "luks-default": Builder.luks,
    "luks-fast": lambda b, p: b.luks(p, iter_time=100),
    "luks-at-bound": lambda b, p: b.luks_patched(p, "slot0.iterations", 100_000_000),
    "snapshots": _with_snapshots,
    "bitmaps": _with_bitmaps,
    "compressed": lambda b, p: _written(b, p, "-c"),
    "compressed-zstd": lambda b, p: _written(b, p, "-c", "-o", "compression_type=zstd"),
    "extl2": lambda b, p: create(p, "64M", "extended_l2=on"),
    "vsize-2t": lambda b, p: create(p, "2T"),
    # hostile images: exit 1 under untrusted
    "data-passwd": lambda b, p: b.data_file(p, b"/etc/passwd"),
    "data-dev": lambda b, p: b.data_file(p, b"/dev/sda"),
    "data-dotdot": lambda b, p: b.data_file(p, b"../x.raw"),
    "data-json": lambda b, p: b.data_file(p, JSON_SHADOW.encode()),
    "data-relative": lambda b, p: b.data_file(p, b"data-relative.raw"),
    "backing-relative": lambda b, p: b.overlay(p, "base.qcow2"),
    "backing-json-shadow": lambda b, p: b.overlay(p, JSON_SHADOW, "raw"),
    "backing-dotdot": lambda b, p: b.overlay(p, "../x"),
    "backing-dev": lambda b, p: b.overlay(p, "/dev/sda", "raw"),
    "backing-absolute": lambda b, p: b.overlay(p, "/srv/images/base.qcow2"),
    "backing-nbd": lambda b, p: b.overlay(p, "nbd://attacker.example:10809/export", "raw"),
    "backing-no-format": lambda b, p: (b.overlay(p, "base.qcow2"), drop_backing_format(p)),
    "backing-empty-name": _empty_backing_name,
    "luks-bomb": lambda b, p: b.luks_patched(p, "slot0.iterations", 4_000_000_000),
    "luks-digest-bomb": lambda b, p: b.luks_patched(p, "mk.iterations", 4_000_000_000),
    "luks-three-slots": _luks_three_slots,
    "luks-stripes": lambda b, p: b.luks_patched(p, "slot0.stripes", 8000),
    "vsize-4t": lambda b, p: create(p, "4T"),
    "big-l1": lambda b, p: create(p, "80G", "cluster_size=512"),
    "aes": lambda b, p: create(p, "64M", "encrypt.format=aes,encrypt.key-secret=sec0", *SECRET),
    "incompat-unknown": _incompat_unknown,
}

CLEAN = [
    "v3",
    "v2",
    "cluster-512",
    "cluster-2m",
    "refcount-64",
    "luks-default",
    "luks-fast",
    "luks-at-bound",
    "snapshots",
    "bitmaps",
    "compressed",
    "compressed-zstd",
    "extl2",
    "vsize-2t",
]
#: Hostile image -> the rules that must refuse it under untrusted.
HOSTILE = {
    "data-passwd": {"data-file-present", "data-file-unsafe-name"},
    "data-dev": {"data-file-present", "data-file-unsafe-name"},
    "data-dotdot": {"data-file-present", "data-file-unsafe-name"},
    "data-json": {"data-file-present", "data-file-unsafe-name"},
    "data-relative": {"data-file-present"},
    "backing-relative": {"backing-file-present"},
    "backing-json-shadow": {"backing-file-present", "backing-file-unsafe-name"},
    "backing-dotdot": {"backing-file-present", "backing-file-unsafe-name"},
    "backing-dev": {"backing-file-present", "backing-file-unsafe-name"},
    "backing-absolute": {"backing-file-present", "backing-file-unsafe-name"},
    "backing-nbd": {"backing-file-present", "backing-file-unsafe-name"},
    "backing-no-format": {"backing-file-present", "backing-format-missing"},
    "backing-empty-name": {"backing-file-present"},
    "luks-bomb": {"luks-iterations-too-high"},
    "luks-digest-bomb": {"luks-iterations-too-high"},
    "luks-three-slots": {"luks-iterations-too-high"},
    "luks-stripes": {"luks-params-unusual"},
    "vsize-4t": {"virtual-size-too-large"},
    "big-l1": {"open-metadata-too-large"},
    "aes": {"header-crypt-aes-deprecated"},
    "incompat-unknown": {"incompat-unknown-bits"},
}
