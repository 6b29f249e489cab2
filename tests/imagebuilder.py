"""Test-side qcow2 image builder and patcher.

This module is deliberately independent of ``qcow2lint``: the tests must not use
the code under test to craft the defects they expect it to find. It has two
halves:

* thin wrappers around ``qemu-img`` / ``qemu-io`` that make *real* images
  (create with options, write patterns, internal snapshots, persistent bitmaps,
  ``qemu-img check``);
* :class:`Qcow2Image`, a minimal parser of the on-disk structures (header,
  header extensions, active L1 and its L2 tables, refcount table, bitmap
  directory and bitmap tables, snapshot table and snapshot L1 tables) with
  setters that overwrite one field, one table entry or raw bytes in place and
  return the absolute file offset they wrote.

Layouts follow ``shared/qcow2-rules.md`` section 1 (big-endian everywhere).
The parser is tolerant: it never raises on spec violations and reads bytes
past the end of the file as zeros, so an image can be re-parsed after it has
been damaged.
"""

from __future__ import annotations

import os
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

QEMU_IMG = "qemu-img"
QEMU_IO = "qemu-io"

QCOW2_MAGIC = 0x514649FB

# Header extension types (qcow2-rules.md 1.2).
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

# Masks (qcow2-rules.md 1.3, 1.4, 1.7, 1.9).
L1E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
L2E_OFFSET_MASK = 0x00FFFFFFFFFFFE00
REFT_OFFSET_MASK = 0xFFFFFFFFFFFFFE00
BME_TABLE_OFFSET_MASK = 0x00FFFFFFFFFFFE00
OFLAG_COPIED = 1 << 63
OFLAG_COMPRESSED = 1 << 62
OFLAG_ZERO = 1

INCOMPAT_EXTL2 = 1 << 4

# name -> (byte offset, struct format) for the fixed header (1.1). The
# 7 padding bytes 105..111 are reached with ``write_bytes`` / ``set_header_padding``.
HEADER_FIELDS: dict[str, tuple[int, str]] = {
    "magic": (0, "I"),
    "version": (4, "I"),
    "backing_file_offset": (8, "Q"),
    "backing_file_size": (16, "I"),
    "cluster_bits": (20, "I"),
    "size": (24, "Q"),
    "crypt_method": (32, "I"),
    "l1_size": (36, "I"),
    "l1_table_offset": (40, "Q"),
    "refcount_table_offset": (48, "Q"),
    "refcount_table_clusters": (56, "I"),
    "nb_snapshots": (60, "I"),
    "snapshots_offset": (64, "Q"),
    "incompatible_features": (72, "Q"),
    "compatible_features": (80, "Q"),
    "autoclear_features": (88, "Q"),
    "refcount_order": (96, "I"),
    "header_length": (100, "I"),
    "compression_type": (104, "B"),
}
HEADER_PADDING_OFFSET = 105
HEADER_PADDING_LEN = 7

# Payload fields of the typed extensions, relative to the extension's data.
EXT_FIELDS: dict[int, dict[str, tuple[int, str]]] = {
    EXT_BITMAPS: {
        "nb_bitmaps": (0, "I"),
        "reserved32": (4, "I"),
        "bitmap_directory_size": (8, "Q"),
        "bitmap_directory_offset": (16, "Q"),
    },
    EXT_CRYPTO: {"offset": (0, "Q"), "length": (8, "Q")},
}

# Bitmap directory entry (1.9), relative to the entry start.
BITMAP_DIR_FIELDS: dict[str, tuple[int, str]] = {
    "bitmap_table_offset": (0, "Q"),
    "bitmap_table_size": (8, "I"),
    "flags": (12, "I"),
    "type": (16, "B"),
    "granularity_bits": (17, "B"),
    "name_size": (18, "H"),
    "extra_data_size": (20, "I"),
}
BITMAP_DIR_FIXED = 24

# Snapshot table entry (1.8), relative to the entry start.
SNAPSHOT_FIELDS: dict[str, tuple[int, str]] = {
    "l1_table_offset": (0, "Q"),
    "l1_size": (8, "I"),
    "id_str_size": (12, "H"),
    "name_size": (14, "H"),
    "date_sec": (16, "I"),
    "date_nsec": (20, "I"),
    "vm_clock_nsec": (24, "Q"),
    "vm_state_size": (32, "I"),
    "extra_data_size": (36, "I"),
    # extra data, present when extra_data_size covers it
    "vm_state_size_large": (40, "Q"),
    "disk_size": (48, "Q"),
    "icount": (56, "Q"),
}
SNAPSHOT_FIXED = 40


class QemuError(RuntimeError):
    """A qemu-img / qemu-io command failed while building a test image."""


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def run_tool(argv: Sequence[str | os.PathLike[str]], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a QEMU tool; raise :class:`QemuError` with its output if ``check`` and it fails.

    qemu-io reports some failures (e.g. "write failed") on stdout with exit 0,
    so such output is treated as a failure too.
    """
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    failed = proc.returncode != 0 or "failed" in proc.stdout.lower()
    if check and failed:
        raise QemuError(
            f"{' '.join(map(str, argv))} -> exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr}"
        )
    return proc


def _format_options(options: Mapping[str, object]) -> str:
    parts = []
    for key, value in options.items():
        if isinstance(value, bool):
            value = "on" if value else "off"
        parts.append(f"{key}={value}")
    return ",".join(parts)


@dataclass(frozen=True)
class Access:
    """How QEMU tools must open an image: extra ``--object`` definitions and
    extra ``--image-opts`` keys (needed for LUKS, whose key is a secret object)."""

    objects: tuple[str, ...] = ()
    opts: tuple[tuple[str, str], ...] = ()

    def args(self, path: Path) -> list[str]:
        """Arguments that name ``path`` for qemu-img check / qemu-io."""
        argv: list[str] = []
        for obj in self.objects:
            argv += ["--object", obj]
        if self.opts:
            image_opts = ",".join([f"driver=qcow2,file.filename={path}"] + [f"{k}={v}" for k, v in self.opts])
            argv += ["--image-opts", image_opts]
        else:
            argv += ["-f", "qcow2", str(path)]
        return argv


PLAIN = Access()
LUKS_SECRET = "abc"
LUKS_ACCESS = Access(
    objects=(f"secret,id=sec0,data={LUKS_SECRET}",),
    opts=(("encrypt.key-secret", "sec0"),),
)
LUKS_CREATE_OPTIONS: dict[str, object] = {
    "encrypt.format": "luks",
    "encrypt.key-secret": "sec0",
    # the default PBKDF time is 2 s per image; the tests only need a valid header
    "encrypt.iter-time": 10,
}


def create(
    path: Path,
    size: int | str,
    options: Mapping[str, object] | None = None,
    *,
    backing: Path | None = None,
    backing_fmt: str | None = None,
    access: Access = PLAIN,
) -> Path:
    """``qemu-img create -f qcow2 [-b backing -F fmt] -o options path size``."""
    argv: list[str | os.PathLike[str]] = [QEMU_IMG, "create", "-q", "-f", "qcow2"]
    for obj in access.objects:
        argv += ["--object", obj]
    if backing is not None:
        argv += ["-b", str(backing)]
        if backing_fmt is not None:
            argv += ["-F", backing_fmt]
    if options:
        argv += ["-o", _format_options(options)]
    argv += [path, str(size)]
    # LUKS creation times PBKDF2 with getrusage(); on a busy machine QEMU can
    # measure 0 ms and give up ("Unable to get accurate CPU usage"). That is a
    # calibration glitch, not a property of the image: try again (a failed
    # try costs a few ms; four tries were not enough at load average 8).
    for _ in range(20):
        proc = run_tool(argv, check=False)
        if "Unable to get accurate CPU usage" not in proc.stderr:
            break
    if proc.returncode != 0:
        raise QemuError(f"{' '.join(map(str, argv))} -> exit {proc.returncode}\n{proc.stderr}")
    return path


def qemu_io(path: Path, *commands: str, access: Access = PLAIN) -> str:
    """Run ``qemu-io -c CMD ...`` on ``path`` (read-write) and return its stdout."""
    argv: list[str] = [QEMU_IO]
    for cmd in commands:
        argv += ["-c", cmd]
    argv += access.args(path)
    return run_tool(argv).stdout


def write(
    path: Path,
    offset: int,
    length: int,
    pattern: int = 0xAB,
    *,
    compressed: bool = False,
    zero: bool = False,
    access: Access = PLAIN,
) -> None:
    """Write ``length`` bytes of ``pattern`` (or zeroes with ``zero``) at guest ``offset``.

    ``compressed`` uses ``write -c`` (whole clusters only); ``zero`` uses
    ``write -z`` which makes zero clusters in v3 images.
    """
    if zero:
        cmd = f"write -z {offset} {length}"
    elif compressed:
        cmd = f"write -c -P {pattern:#x} {offset} {length}"
    else:
        cmd = f"write -P {pattern:#x} {offset} {length}"
    qemu_io(path, cmd, access=access)


def snapshot_create(path: Path, name: str) -> None:
    """``qemu-img snapshot -c name path``: an internal snapshot."""
    run_tool([QEMU_IMG, "snapshot", "-q", "-c", name, path])


def bitmap_add(path: Path, name: str, *, granularity: int | None = None, disabled: bool = False) -> None:
    """Add a persistent bitmap (enabled, i.e. with the ``auto`` flag, unless ``disabled``).

    Data written afterwards with :func:`write` is recorded in every enabled
    bitmap: qemu-io loads persistent bitmaps on open and stores them on close,
    so their bitmap tables get serialized data clusters.
    """
    argv: list[str | os.PathLike[str]] = [QEMU_IMG, "bitmap", "--add"]
    if granularity is not None:
        argv += ["-g", str(granularity)]
    argv += [path, name]
    run_tool(argv)
    if disabled:
        run_tool([QEMU_IMG, "bitmap", "--disable", path, name])


@dataclass(frozen=True)
class CheckResult:
    """Outcome of ``qemu-img check``."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together, for substring checks and messages."""
        return self.stdout + self.stderr


def qemu_check(path: Path, *, access: Access = PLAIN) -> CheckResult:
    """``qemu-img check`` (read-only, no repair). Exit codes: see catalogue 3.1."""
    proc = run_tool([QEMU_IMG, "check", *access.args(path)], check=False)
    return CheckResult(proc.returncode, proc.stdout, proc.stderr)


# --------------------------------------------------------------------------
# Parser / patcher
# --------------------------------------------------------------------------


@dataclass
class Extension:
    """One header extension as found by the scan of 1.2."""

    index: int
    type: int
    length: int
    offset: int  # start of the 8-byte framing
    data: bytes

    @property
    def data_offset(self) -> int:
        """Absolute offset of the extension's payload."""
        return self.offset + 8


@dataclass
class BitmapEntry:
    """One bitmap directory entry with its bitmap table."""

    index: int
    offset: int  # absolute offset of the entry
    fields: dict[str, int]
    name: bytes
    size: int  # entry size including padding
    table: list[int] = field(default_factory=list)

    @property
    def padding_offset(self) -> int:
        """Absolute offset of the first padding byte after the name."""
        return self.offset + BITMAP_DIR_FIXED + self.fields["extra_data_size"] + self.fields["name_size"]

    @property
    def padding_len(self) -> int:
        """Number of padding bytes after the name."""
        return self.offset + self.size - self.padding_offset

    @property
    def table_offset(self) -> int:
        """The entry's bitmap_table_offset."""
        return self.fields["bitmap_table_offset"]


@dataclass
class SnapshotEntry:
    """One snapshot table entry with its L1 table."""

    index: int
    offset: int
    fields: dict[str, int]
    id_str: bytes
    name: bytes
    size: int
    l1: list[int] = field(default_factory=list)


class Qcow2Image:
    """A minimal, tolerant qcow2 parser with in-place setters.

    Every ``set_*`` method writes straight to the file and returns the absolute
    byte offset of what it wrote, so a test can compare it with a finding's
    ``offset``. The parsed view is *not* refreshed after a write (call
    :meth:`reload` for that); only the changed value is mirrored, so offsets
    computed from the original layout stay valid while a test applies several
    patches.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.reload()

    # ---- raw access ----------------------------------------------------

    def read_bytes(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``; bytes past EOF read as zero."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(length)
        return data + bytes(length - len(data))

    def write_bytes(self, offset: int, data: bytes) -> int:
        """Overwrite raw bytes at ``offset`` (the file grows if needed)."""
        with open(self.path, "r+b") as f:
            f.seek(offset)
            f.write(data)
        return offset

    def read_int(self, offset: int, fmt: str) -> int:
        """Read one big-endian integer of struct format ``fmt``."""
        return struct.unpack(">" + fmt, self.read_bytes(offset, struct.calcsize(fmt)))[0]

    def write_int(self, offset: int, fmt: str, value: int) -> int:
        """Write one big-endian integer of struct format ``fmt``."""
        return self.write_bytes(offset, struct.pack(">" + fmt, value))

    def read_u64_table(self, offset: int, count: int) -> list[int]:
        """``count`` big-endian u64 at ``offset`` (bounded by the file size)."""
        remaining = self.file_size - offset
        count = max(0, min(count, (remaining + 7) // 8))
        return list(struct.unpack(f">{count}Q", self.read_bytes(offset, 8 * count)))

    def truncate(self, size: int) -> None:
        """Cut (or extend with zeros) the file to ``size`` bytes."""
        os.truncate(self.path, size)

    @property
    def file_size(self) -> int:
        """Current size of the image file in bytes."""
        return self.path.stat().st_size

    # ---- parsing -------------------------------------------------------

    def reload(self) -> None:
        """(Re)parse every structure from the file."""
        self.header = {name: self.read_int(off, fmt) for name, (off, fmt) in HEADER_FIELDS.items()}
        if self.version == 2:
            # v2 has no such fields (1.1): the bytes at 72.. are the extension area
            self.header.update(
                incompatible_features=0,
                compatible_features=0,
                autoclear_features=0,
                refcount_order=4,
                header_length=72,
                compression_type=0,
            )
        self.extensions = self._parse_extensions()
        self.l1 = self.read_u64_table(self.header["l1_table_offset"], self.header["l1_size"])
        self.l2_tables: dict[int, list[int]] = {}
        self.l2_bitmaps: dict[int, list[int]] = {}
        for entry in self.l1:
            l2_offset = entry & L1E_OFFSET_MASK
            if l2_offset and l2_offset % self.cluster_size == 0 and l2_offset < self.file_size:
                self._parse_l2(l2_offset)
        self.reftable = self.read_u64_table(
            self.header["refcount_table_offset"],
            self.header["refcount_table_clusters"] * self.cluster_size // 8,
        )
        self.bitmaps = self._parse_bitmaps()
        self.snapshots = self._parse_snapshots()

    def _parse_extensions(self) -> list[Extension]:
        start = self.header_length
        end = self.cluster_size
        if self.header["backing_file_offset"]:
            end = min(end, self.header["backing_file_offset"])
        result: list[Extension] = []
        pos = start
        while pos + 8 <= end:
            ext_type, length = struct.unpack(">II", self.read_bytes(pos, 8))
            if ext_type == EXT_END:
                break
            data = self.read_bytes(pos + 8, min(length, max(0, end - pos - 8)))
            result.append(Extension(len(result), ext_type, length, pos, data))
            pos += 8 + _round_up(length, 8)
        return result

    def _parse_l2(self, l2_offset: int) -> None:
        words = self.read_u64_table(l2_offset, self.cluster_size // 8)
        if self.extended_l2:
            self.l2_tables[l2_offset] = words[0::2]
            self.l2_bitmaps[l2_offset] = words[1::2]
        else:
            self.l2_tables[l2_offset] = words

    def _parse_bitmaps(self) -> list[BitmapEntry]:
        ext = self.find_extension(EXT_BITMAPS)
        if ext is None:
            return []
        nb, _, dir_size, dir_offset = struct.unpack(">IIQQ", ext.data[:24].ljust(24, b"\0"))
        result: list[BitmapEntry] = []
        pos = dir_offset
        for index in range(min(nb, 1024)):
            if pos >= dir_offset + dir_size or pos >= self.file_size:
                break
            fields = {name: self.read_int(pos + off, fmt) for name, (off, fmt) in BITMAP_DIR_FIELDS.items()}
            name_at = pos + BITMAP_DIR_FIXED + fields["extra_data_size"]
            name = self.read_bytes(name_at, fields["name_size"])
            size = _round_up(BITMAP_DIR_FIXED + fields["extra_data_size"] + fields["name_size"], 8)
            table = self.read_u64_table(fields["bitmap_table_offset"], min(fields["bitmap_table_size"], 1 << 20))
            result.append(BitmapEntry(index, pos, fields, name, size, table))
            pos += size
        return result

    def _parse_snapshots(self) -> list[SnapshotEntry]:
        result: list[SnapshotEntry] = []
        pos = self.header["snapshots_offset"]
        for index in range(min(self.header["nb_snapshots"], 1024)):
            if pos >= self.file_size:
                break
            fields = {
                name: self.read_int(pos + off, fmt)
                for name, (off, fmt) in SNAPSHOT_FIELDS.items()
                if off < SNAPSHOT_FIXED
            }
            extra = fields["extra_data_size"]
            for name, (off, fmt) in SNAPSHOT_FIELDS.items():
                if off >= SNAPSHOT_FIXED and off + struct.calcsize(fmt) <= SNAPSHOT_FIXED + extra:
                    fields[name] = self.read_int(pos + off, fmt)
            id_at = pos + SNAPSHOT_FIXED + extra
            id_str = self.read_bytes(id_at, fields["id_str_size"])
            name = self.read_bytes(id_at + fields["id_str_size"], fields["name_size"])
            size = _round_up(SNAPSHOT_FIXED + extra + fields["id_str_size"] + fields["name_size"], 8)
            l1 = self.read_u64_table(fields["l1_table_offset"], fields["l1_size"])
            result.append(SnapshotEntry(index, pos, fields, id_str, name, size, l1))
            pos += size
        return result

    # ---- derived values --------------------------------------------------

    @property
    def version(self) -> int:
        """Header version."""
        return self.header["version"]

    @property
    def cluster_bits(self) -> int:
        """Header cluster_bits."""
        return self.header["cluster_bits"]

    @property
    def cluster_size(self) -> int:
        """Cluster size in bytes (clamped to a sane range so a damaged header still parses)."""
        return 1 << min(max(self.cluster_bits, 9), 21)

    @property
    def header_length(self) -> int:
        """header_length (72 for v2)."""
        return self.header["header_length"]

    @property
    def extended_l2(self) -> bool:
        """Whether incompatible bit 4 (extended L2 entries) is set."""
        return bool(self.header["incompatible_features"] & INCOMPAT_EXTL2)

    @property
    def l2_entries(self) -> int:
        """Entries per L2 table (1.3)."""
        return self.cluster_size // (16 if self.extended_l2 else 8)

    def find_extension(self, ext_type: int) -> Extension | None:
        """The first extension of ``ext_type``, or None."""
        return next((e for e in self.extensions if e.type == ext_type), None)

    def extension(self, ext_type: int) -> Extension:
        """The first extension of ``ext_type`` (KeyError if absent)."""
        ext = self.find_extension(ext_type)
        if ext is None:
            raise KeyError(f"no extension {ext_type:#x} in {self.path}")
        return ext

    def guest_to_l2(self, guest_offset: int) -> tuple[int, int, int]:
        """Map a guest offset to ``(l1_index, l2_offset, l2_index)`` through the active L1."""
        l1_index = guest_offset // (self.cluster_size * self.l2_entries)
        l2_offset = self.l1[l1_index] & L1E_OFFSET_MASK
        l2_index = (guest_offset // self.cluster_size) % self.l2_entries
        return l1_index, l2_offset, l2_index

    def l2_entry_offset(self, l2_offset: int, index: int) -> int:
        """Absolute offset of L2 entry ``index`` in the table at ``l2_offset``."""
        return l2_offset + index * (16 if self.extended_l2 else 8)

    def bitmap(self, which: int | str) -> BitmapEntry:
        """A bitmap directory entry by index or name."""
        if isinstance(which, int):
            return self.bitmaps[which]
        return next(b for b in self.bitmaps if b.name == which.encode())

    def snapshot(self, which: int | str) -> SnapshotEntry:
        """A snapshot entry by index or name."""
        if isinstance(which, int):
            return self.snapshots[which]
        return next(s for s in self.snapshots if s.name == which.encode())

    def refcount(self, cluster_index: int) -> int:
        """On-disk refcount of host cluster ``cluster_index`` (1.7)."""
        order = self.header["refcount_order"]
        block_bits = self.cluster_bits + 3 - order
        rt_index = cluster_index >> block_bits
        if rt_index >= len(self.reftable):
            return 0
        block = self.reftable[rt_index] & REFT_OFFSET_MASK
        if not block:
            return 0
        i = cluster_index & ((1 << block_bits) - 1)
        width = 1 << order
        if width >= 8:
            return int.from_bytes(self.read_bytes(block + i * width // 8, width // 8), "big")
        byte = self.read_bytes(block + i * width // 8, 1)[0]
        shift = (i * width) % 8
        return (byte >> shift) & ((1 << width) - 1)

    # ---- setters ---------------------------------------------------------

    def header_field_offset(self, name: str) -> int:
        """Absolute offset of a header field."""
        return HEADER_FIELDS[name][0]

    def set_header(self, name: str, value: int) -> int:
        """Set a header field (see :data:`HEADER_FIELDS`)."""
        off, fmt = HEADER_FIELDS[name]
        self.header[name] = value
        return self.write_int(off, fmt, value)

    def set_header_padding(self, index: int, value: int) -> int:
        """Set padding byte ``index`` (0..6) of header bytes 105..111."""
        assert 0 <= index < HEADER_PADDING_LEN
        return self.write_int(HEADER_PADDING_OFFSET + index, "B", value)

    def ext_field_offset(self, ext_type: int, name: str) -> int:
        """Absolute offset of a typed extension's payload field."""
        off, _ = EXT_FIELDS[ext_type][name]
        return self.extension(ext_type).data_offset + off

    def set_ext_field(self, ext_type: int, name: str, value: int) -> int:
        """Set a payload field of a typed extension (bitmaps, crypto header)."""
        _, fmt = EXT_FIELDS[ext_type][name]
        return self.write_int(self.ext_field_offset(ext_type, name), fmt, value)

    def set_ext_header(self, index: int, *, type: int | None = None, length: int | None = None) -> int:
        """Overwrite the type and/or length word of extension ``index``."""
        ext = self.extensions[index]
        if type is not None:
            self.write_int(ext.offset, "I", type)
        if length is not None:
            self.write_int(ext.offset + 4, "I", length)
        return ext.offset

    def add_extension(self, ext_type: int, data: bytes) -> int:
        """Append an extension after the last one, followed by a fresh end marker.

        Returns the offset of the new extension's framing. The caller must make
        sure the area has room (QEMU leaves the rest of cluster 0 zero).
        """
        if self.extensions:
            last = self.extensions[-1]
            pos = last.offset + 8 + _round_up(last.length, 8)
        else:
            pos = self.header_length
        body = struct.pack(">II", ext_type, len(data)) + data + bytes(_round_up(len(data), 8) - len(data))
        self.write_bytes(pos, body + bytes(8))
        self.extensions.append(Extension(len(self.extensions), ext_type, len(data), pos, data))
        return pos

    def l1_entry_offset(self, index: int) -> int:
        """Absolute offset of active L1 entry ``index``."""
        return self.header["l1_table_offset"] + 8 * index

    def set_l1(self, index: int, value: int) -> int:
        """Set active L1 entry ``index``."""
        self.l1[index] = value
        return self.write_int(self.l1_entry_offset(index), "Q", value)

    def set_l2(self, l2_offset: int, index: int, value: int, *, bitmap: int | None = None) -> int:
        """Set entry ``index`` of the L2 table at ``l2_offset`` (and its subcluster bitmap)."""
        off = self.l2_entry_offset(l2_offset, index)
        self.write_int(off, "Q", value)
        if l2_offset in self.l2_tables:
            self.l2_tables[l2_offset][index] = value
        if bitmap is not None:
            assert self.extended_l2, "subcluster bitmaps exist only with extended L2"
            self.write_int(off + 8, "Q", bitmap)
            self.l2_bitmaps[l2_offset][index] = bitmap
        return off

    def reftable_entry_offset(self, index: int) -> int:
        """Absolute offset of refcount table entry ``index``."""
        return self.header["refcount_table_offset"] + 8 * index

    def set_reftable(self, index: int, value: int) -> int:
        """Set refcount table entry ``index``."""
        self.reftable[index] = value
        return self.write_int(self.reftable_entry_offset(index), "Q", value)

    def bitmap_field_offset(self, which: int | str, name: str) -> int:
        """Absolute offset of a bitmap directory entry field."""
        return self.bitmap(which).offset + BITMAP_DIR_FIELDS[name][0]

    def set_bitmap_field(self, which: int | str, name: str, value: int) -> int:
        """Set a field of a bitmap directory entry."""
        entry = self.bitmap(which)
        entry.fields[name] = value
        return self.write_int(self.bitmap_field_offset(which, name), BITMAP_DIR_FIELDS[name][1], value)

    def set_bitmap_padding(self, which: int | str, index: int, value: int) -> int:
        """Set padding byte ``index`` after a bitmap entry's name."""
        entry = self.bitmap(which)
        assert 0 <= index < entry.padding_len, f"entry has {entry.padding_len} padding bytes"
        return self.write_int(entry.padding_offset + index, "B", value)

    def bitmap_table_entry_offset(self, which: int | str, index: int) -> int:
        """Absolute offset of entry ``index`` of a bitmap's table."""
        return self.bitmap(which).table_offset + 8 * index

    def set_bitmap_table(self, which: int | str, index: int, value: int) -> int:
        """Set entry ``index`` of a bitmap's table."""
        self.bitmap(which).table[index] = value
        return self.write_int(self.bitmap_table_entry_offset(which, index), "Q", value)

    def snapshot_field_offset(self, which: int | str, name: str) -> int:
        """Absolute offset of a snapshot table entry field."""
        return self.snapshot(which).offset + SNAPSHOT_FIELDS[name][0]

    def set_snapshot_field(self, which: int | str, name: str, value: int) -> int:
        """Set a field of a snapshot table entry."""
        entry = self.snapshot(which)
        entry.fields[name] = value
        return self.write_int(self.snapshot_field_offset(which, name), SNAPSHOT_FIELDS[name][1], value)

    def set_snapshot_l1(self, which: int | str, index: int, value: int) -> int:
        """Set entry ``index`` of a snapshot's L1 table."""
        entry = self.snapshot(which)
        entry.l1[index] = value
        return self.write_int(entry.fields["l1_table_offset"] + 8 * index, "Q", value)
