"""The standard dump: byte-identical to QEMU's ``qcow2.py dump-header``.

People diff these dumps in CI and in QEMU's own test outputs, so this module
reproduces the script's output exactly (see DUMP-FORMAT.md), including its
reading quirks, which differ from QEMU's driver and from our reader:

* the bitmaps extension body is always 24 bytes, whatever its length says;
* the bitmap directory is read as ``nb_bitmaps`` entries one after another;
* a read that comes up short at the end of the file moves the position
  only by what was read (the script keeps a file position).

Where the script would crash (a short read it cannot unpack, a name that is
not ASCII, a number too long to print), the dump keeps what it could read
and says why it stopped in :attr:`Dump.error`; the caller prints that as one
line and exits non-zero.  The file is only ever read.
"""

from __future__ import annotations

import json
import string
from typing import Any

import attrs
import numpy as np

from qcow2lint import spec
from qcow2lint.reader import Reader
from qcow2lint.records import (
    BITMAP_ENTRY_KINDS,
    BitmapDirectoryEntry,
    BitmapsExtension,
    Header,
    bitmap_entry_kinds,
)

_PRINTABLE = frozenset(string.printable.encode("ascii"))
_HEX_FIELDS = {
    "magic", "backing_file_offset", "backing_file_size", "l1_table_offset",
    "refcount_table_offset", "snapshot_offset",
}  # fmt: skip
_FEATURE_FIELDS = {"incompatible_features", "compatible_features", "autoclear_features"}
_BITMAP_EXT_FIELDS = (
    ("nb_bitmaps", "{}"), ("reserved32", "{}"),
    ("bitmap_directory_size", "{:#x}"), ("bitmap_directory_offset", "{:#x}"),
)  # fmt: skip
_ENTRY_FIELDS = (
    ("bitmap_table_offset", "{:#x}"), ("bitmap_table_size", "{}"), ("flags", None),
    ("type", "{}"), ("granularity_bits", "{}"), ("name_size", "{}"), ("extra_data_size", "{}"),
)  # fmt: skip
_FLAG_NAMES = {0: "in-use", 1: "auto"}
#: Beyond this many bitmap directory entries the dump stops (a hostile
#: nb_bitmaps would otherwise print until the end of the file).
MAX_DUMPED_BITMAPS = 1 << 20
#: Likewise for bitmap table entries in all (each is one line of output).
MAX_DUMPED_TABLE_ENTRIES = 1 << 26


class _Stop(Exception):
    """Where qcow2.py would have crashed."""


@attrs.define
class _Bitmap:
    entry: BitmapDirectoryEntry
    table: np.ndarray


@attrs.define
class _Extension:
    magic: int
    length: int
    data_str: str | None = None
    bitmaps: BitmapsExtension | None = None
    bitmap_list: list[_Bitmap] = attrs.field(factory=list)


@attrs.frozen
class Dump:
    """The rendered dump and, if the script would have crashed, why."""

    text: str
    error: str | None


def _fmt(fmt: str, value: int) -> str:
    return fmt.format(value)


def _line(name: str, value: str) -> str:
    return f"{name:<25} {value}\n"


def _data_str(data: bytes) -> str:
    """How qcow2.py shows extension data: quoted when every byte is printable."""
    return f"'{data.decode('ascii')}'" if all(byte in _PRINTABLE for byte in data) else "<binary>"


class _Walker:
    """Reads the header area the way qcow2.py does, with its file position."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.pos = 0
        self.table_entries = 0
        self.errors: list[str] = []

    def read(self, length: int) -> bytes:
        data = self.reader.read(self.pos, length)
        self.pos += len(data)
        return data

    def read_exact(self, length: int, what: str) -> bytes:
        start = self.pos
        data = self.read(length)
        if len(data) < length:
            raise _Stop(f"{what} at {start:#x} is cut off by the end of the file ({self.reader.size} bytes)")
        return data

    def extensions(self, header: Header, into: list[_Extension]) -> None:
        cluster_size = 1 << header.cluster_bits if header.cluster_bits < 1 << 16 else None
        ends = [size for size in (cluster_size, header.backing_file_offset or None) if size is not None]
        end = min(ends) if ends else None
        self.pos = header.header_length
        while end is None or self.pos < end:
            framing = self.read_exact(spec.EXT_FRAMING_SIZE, "a header extension")
            magic, length = int.from_bytes(framing[:4], "big"), int.from_bytes(framing[4:], "big")
            if magic == spec.EXT_END:
                return
            ext = _Extension(magic, length)
            into.append(ext)
            if magic == spec.EXT_BITMAPS:
                body_offset = self.pos
                ext.bitmaps = BitmapsExtension.from_bytes(self.read_exact(spec.BITMAPS_EXT_SIZE, "the bitmaps extension"), body_offset)
                resume = self.pos
                self.bitmap_directory(ext, header)
                self.pos = resume
            else:
                ext.data_str = _data_str(self.read(spec.round_up(length, 8))[:length])

    def bitmap_directory(self, ext: _Extension, header: Header) -> None:
        assert ext.bitmaps is not None
        self.pos = ext.bitmaps.bitmap_directory_offset
        for index in range(ext.bitmaps.nb_bitmaps):
            if index >= MAX_DUMPED_BITMAPS:
                raise _Stop(f"nb_bitmaps is {ext.bitmaps.nb_bitmaps}: stopped after {MAX_DUMPED_BITMAPS} entries")
            start = self.pos
            fixed = self.read_exact(spec.BITMAP_DIR_ENTRY_SIZE, f"bitmap directory entry {index}")
            name_size = spec.field(fixed, spec.BITMAP_ENTRY_FIELDS, "name_size", 2)
            extra_size = spec.field(fixed, spec.BITMAP_ENTRY_FIELDS, "extra_data_size", 4)
            self.pos += extra_size
            name = self.read(name_size)
            entry = BitmapDirectoryEntry.decode(index, start, fixed, b"", name)
            self.pos += spec.bitmap_entry_size(extra_size, name_size) - (spec.BITMAP_DIR_ENTRY_SIZE + name_size + extra_size)
            count = entry.bitmap_table_size
            self.table_entries += count
            if self.table_entries > MAX_DUMPED_TABLE_ENTRIES:
                raise _Stop(f"the bitmap tables hold more than {MAX_DUMPED_TABLE_ENTRIES} entries: stopped at bitmap {index}")
            table = self.reader.read(entry.bitmap_table_offset, count * spec.BITMAP_TABLE_ENTRY_SIZE)
            bitmap = _Bitmap(entry, np.frombuffer(table[: len(table) // 8 * 8], ">u8").astype(np.uint64))
            ext.bitmap_list.append(bitmap)
            if not name.isascii():
                self.errors.append(f"bitmap {index} has a name that is not ASCII ({name!r}); printed with escapes")
            if len(table) < count * spec.BITMAP_TABLE_ENTRY_SIZE:
                raise _Stop(
                    f"the bitmap table of bitmap {index} ({count} entries at {entry.bitmap_table_offset:#x}) "
                    f"is cut off by the end of the file ({self.reader.size} bytes)"
                )


def build_dump(path: str, as_json: bool = False) -> Dump:
    """The standard dump of the image at ``path`` (text or JSON)."""
    reader = Reader(path)
    try:
        head = reader.read(0, spec.V3_HEADER_LENGTH)
        if len(head) < spec.V3_HEADER_LENGTH:
            return Dump("", f"the file has {len(head)} bytes: too short for the 104-byte header qcow2.py reads")
        header = Header.from_bytes(head)
        walker = _Walker(reader)
        extensions: list[_Extension] = []
        error = None
        try:
            walker.extensions(header, extensions)
        except _Stop as stop:
            error = str(stop)
        render = _render_json if as_json else _render_text
        try:
            text = render(header, extensions)
        except _Stop as stop:
            return Dump("", str(stop))
        return Dump(text, error or (walker.errors[0] if walker.errors else None))
    finally:
        reader.close()


def _header_values(header: Header) -> dict[str, int]:
    return {name: getattr(header, name) for name in spec.HEADER_FIELDS}


def _flags(value: int) -> str:
    names = [_FLAG_NAMES.get(bit, f"bit-{bit}") for bit in spec.set_bits(value)]
    return f"{value:#x} ({names})"


def _cluster_size_str(header: Header) -> str:
    try:
        if header.cluster_bits >= 1 << 16:
            raise ValueError
        return str(1 << header.cluster_bits)
    except ValueError:
        raise _Stop(f"cluster_bits {header.cluster_bits}: the cluster size is too large to print") from None


def _render_text(header: Header, extensions: list[_Extension]) -> str:
    out = []
    for name, value in _header_values(header).items():
        if name in _FEATURE_FIELDS:
            shown = str(spec.set_bits(value))
        else:
            shown = f"{value:#x}" if name in _HEX_FIELDS else str(value)
        out.append(_line(name, shown))
    out.append("\n")
    for ext in extensions:
        out.append("Header extension:\n")
        out.append(_line("magic", f"{ext.magic:#x} ({spec.EXT_NAMES.get(ext.magic, '<unknown>')})"))
        out.append(_line("length", str(ext.length)))
        if ext.bitmaps is None:
            out.append(_line("data", ext.data_str or ""))
        else:
            for name, fmt in _BITMAP_EXT_FIELDS:
                out.append(_line(name, _fmt(fmt, getattr(ext.bitmaps, name))))
            for bitmap in ext.bitmap_list:
                out.append("\n")
                out.append(_line("Bitmap name", bitmap.entry.name))
                for name, fmt in _ENTRY_FIELDS:
                    value = getattr(bitmap.entry, name)
                    out.append(_line(name, _flags(value) if fmt is None else _fmt(fmt, value)))
                out.append(_bitmap_table_text(bitmap.table, header))
        out.append("\n")
    return "".join(out)


def _bitmap_table_text(table: np.ndarray, header: Header) -> str:
    rows = [f'{"Bitmap table":<14} {"type":<15} {"size":<12} {"offset"}\n']
    kinds = bitmap_entry_kinds(table)
    offsets = (table & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)).tolist()
    cluster_size = _cluster_size_str(header) if (kinds == 2).any() else ""
    for index, (kind, offset) in enumerate(zip(kinds.tolist(), offsets)):
        size = cluster_size if kind == 2 else "0"
        rows.append(f"{index:<14} {BITMAP_ENTRY_KINDS[kind]:<15} {size:<12} {offset}\n")
    return "".join(rows)


def _render_json(header: Header, extensions: list[_Extension]) -> str:
    items: list[dict[str, Any]] = []
    for ext in extensions:
        item: dict[str, Any] = {"name": spec.EXT_NAMES.get(ext.magic, "<unknown>"), "magic": ext.magic, "length": ext.length}
        if ext.bitmaps is None:
            item["data_str"] = ext.data_str
        else:
            data: dict[str, Any] = {name: getattr(ext.bitmaps, name) for name, _ in _BITMAP_EXT_FIELDS}
            data["bitmap_directory"] = [_bitmap_json(bitmap) for bitmap in ext.bitmap_list]
            item["data"] = data
        items.append(item)
    return json.dumps(_header_values(header), indent=4) + "\n\n" + json.dumps(items, indent=4) + "\n"


def _bitmap_json(bitmap: _Bitmap) -> dict[str, Any]:
    table = bitmap.table
    kinds = bitmap_entry_kinds(table).tolist()
    offsets = (table & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)).tolist()
    reserved = (table & np.uint64(spec.BME_TABLE_ENTRY_RESERVED_MASK)).tolist()
    return {
        "name": bitmap.entry.name,
        **{name: getattr(bitmap.entry, name) for name, _ in _ENTRY_FIELDS},
        "bitmap_table": [
            {"type": BITMAP_ENTRY_KINDS[kind], "offset": offset, "reserved": res}
            for kind, offset, res in zip(kinds, offsets, reserved)
        ],
    }
