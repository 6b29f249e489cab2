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

Where the script would print an image's line breaks or other control
characters raw (a newline or CR in extension data, an ESC or NUL in a
bitmap name), the text dump shows them escaped (``\\n``, ``\\x1b``), so that
no image can forge dump lines or drive a terminal.  Tab, vertical tab and
form feed, which the script prints raw inside quoted extension data, stay
raw (byte-identical; they cannot start a line).  The JSON dump needs no such
care: JSON escapes them, as the script's does.
"""

from __future__ import annotations

import json
import re
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
from qcow2lint.recordtype import Record
from qcow2lint.source import open_source
from qcow2lint.text import escape, exception_text, label

_PRINTABLE_BYTES = string.printable.encode("ascii")
_HEX_FIELDS = {
    "magic",
    "backing_file_offset",
    "backing_file_size",
    "l1_table_offset",
    "refcount_table_offset",
    "snapshot_offset",
}
_FEATURE_FIELDS = {"incompatible_features", "compatible_features", "autoclear_features"}
_BITMAP_EXT_FIELDS = (
    ("nb_bitmaps", "{}"),
    ("reserved32", "{}"),
    ("bitmap_directory_size", "{:#x}"),
    ("bitmap_directory_offset", "{:#x}"),
)
_ENTRY_FIELDS = (
    ("bitmap_table_offset", "{:#x}"),
    ("bitmap_table_size", "{}"),
    ("flags", None),
    ("type", "{}"),
    ("granularity_bits", "{}"),
    ("name_size", "{}"),
    ("extra_data_size", "{}"),
)
_FLAG_NAMES = {0: "in-use", 1: "auto"}
#: The dump's output stays within a few MiB whatever the image says
#: (issue 9): past these counts it prints one line saying how many entries
#: it left out (docs/dump.md).  Real images are far below them.
#: Header extensions shown (a 2 MiB extension area holds 262,143).
MAX_DUMPED_EXTENSIONS = 1 << 14
#: Bitmap directory entries shown (QEMU allows 65,535 bitmaps).
MAX_DUMPED_BITMAPS = 1 << 10
#: Bytes of a bitmap name shown: QEMU's limit (BME_MAX_NAME_SIZE); a longer
#: (hostile, up to 65535-byte) name is cut, with how many bytes more.
MAX_DUMPED_NAME = spec.BME_MAX_NAME_SIZE
#: Bytes of extension data shown (QEMU's own extensions are a few KiB).
MAX_DUMPED_DATA = 1 << 18
#: Bitmap table entries shown, over all bitmaps (each is one line).
MAX_DUMPED_TABLE_ENTRIES = 1 << 15
#: QEMU reads header extensions only up to the end of cluster 0 (or the
#: backing file name), and a cluster is at most 2 MiB (MAX_CLUSTER_BITS):
#: with a hostile cluster_bits the walk stops there, not at the end of file.
MAX_EXTENSION_AREA_END = 1 << spec.MAX_CLUSTER_BITS


class _Stop(Exception):
    """Where qcow2.py would have crashed."""


@attrs.define
class _Bitmap:
    entry: BitmapDirectoryEntry
    table: np.ndarray
    #: Table entries left out past MAX_DUMPED_TABLE_ENTRIES.
    omitted: int = 0


@attrs.define
class _Extension:
    magic: int
    length: int
    data_str: str | None = None
    bitmaps: BitmapsExtension | None = None
    bitmap_list: list[_Bitmap] = attrs.field(factory=list)
    #: Directory entries left out past MAX_DUMPED_BITMAPS.
    bitmaps_omitted: int = 0


@attrs.frozen(repr=False)
class Dump(Record):
    """The rendered dump and, if the script would have crashed, why."""

    text: str
    error: str | None


def _fmt(fmt: str, value: int) -> str:
    return fmt.format(value)


def _line(name: str, value: str) -> str:
    return f"{name:<25} {value}\n"


_KEPT = re.compile("([\t\x0b\x0c])")


def _shown(text: str) -> str:
    """Image text for the text dump: control characters escaped except tab,
    vertical tab and form feed (see the module docstring)."""
    return "".join(part if _KEPT.fullmatch(part) else escape(part) for part in _KEPT.split(text))


def _more(length: int, limit: int) -> str:
    return f"...(+{length - limit} bytes)" if length > limit else ""


def _name(raw: bytes) -> str:
    """A bitmap name as qcow2.py decodes it (ASCII; other bytes escaped),
    cut after MAX_DUMPED_NAME bytes."""
    return raw[:MAX_DUMPED_NAME].decode("ascii", "backslashreplace") + _more(len(raw), MAX_DUMPED_NAME)


def _data_str(data: bytes) -> str:
    """How qcow2.py shows extension data: quoted when every byte is
    printable (cut after MAX_DUMPED_DATA bytes)."""
    if data.translate(None, _PRINTABLE_BYTES):
        return "<binary>"
    return f"'{data[:MAX_DUMPED_DATA].decode('ascii')}'" + _more(len(data), MAX_DUMPED_DATA)


class _Walker:
    """Reads the header area the way qcow2.py does, with its file position."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.pos = 0
        self.table_entries = 0
        self.errors: list[str] = []
        #: Header extensions left out past MAX_DUMPED_EXTENSIONS.
        self.extensions_omitted = 0
        #: What the walk is reading, for a memory error's message.
        self.where = "the header"

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
        bounded = end is None or end > MAX_EXTENSION_AREA_END
        if end is None or bounded:
            end = MAX_EXTENSION_AREA_END
        self.pos = header.header_length
        while self.pos < end:
            self.where = f"header extension {len(into) + self.extensions_omitted}"
            framing = self.read_exact(spec.EXT_FRAMING_SIZE, "a header extension")
            magic, length = int.from_bytes(framing[:4], "big"), int.from_bytes(framing[4:], "big")
            if magic == spec.EXT_END:
                return
            if self.pos + length > MAX_EXTENSION_AREA_END + 8:
                raise _Stop(
                    f"header extension {len(into) + self.extensions_omitted} at {self.pos - 8:#x} has length "
                    f"{length}: its data runs past {MAX_EXTENSION_AREA_END:#x}, the end of the largest extension "
                    "area QEMU reads; stopped"
                )
            if len(into) >= MAX_DUMPED_EXTENSIONS:
                self.extensions_omitted += 1  # counted, not kept
                self.pos += spec.round_up(length, 8)
                continue
            ext = _Extension(magic, length)
            into.append(ext)
            if magic == spec.EXT_BITMAPS:
                body_offset = self.pos
                ext.bitmaps = BitmapsExtension.from_bytes(
                    self.read_exact(spec.BITMAPS_EXT_SIZE, "the bitmaps extension"), body_offset
                )
                resume = self.pos
                self.bitmap_directory(ext, header)
                self.pos = resume
            else:
                ext.data_str = _data_str(self.read(spec.round_up(length, 8))[:length])
        if bounded and self.pos >= end:
            raise _Stop(
                f"cluster_bits {header.cluster_bits} is outside QEMU's range {spec.MIN_CLUSTER_BITS}.."
                f"{spec.MAX_CLUSTER_BITS}: stopped the extension walk at {end:#x}, the end of the largest "
                "extension area QEMU reads"
            )

    def bitmap_directory(self, ext: _Extension, header: Header) -> None:
        assert ext.bitmaps is not None
        self.pos = ext.bitmaps.bitmap_directory_offset
        for index in range(ext.bitmaps.nb_bitmaps):
            if index >= MAX_DUMPED_BITMAPS:
                ext.bitmaps_omitted = ext.bitmaps.nb_bitmaps - index
                return
            self.where = f"bitmap directory entry {index}"
            start = self.pos
            fixed = self.read_exact(spec.BITMAP_DIR_ENTRY_SIZE, f"bitmap directory entry {index}")
            name_size = spec.field(fixed, spec.BITMAP_ENTRY_FIELDS, "name_size", 2)
            extra_size = spec.field(fixed, spec.BITMAP_ENTRY_FIELDS, "extra_data_size", 4)
            self.pos += extra_size
            name = self.read(name_size)
            entry = BitmapDirectoryEntry.decode(index, start, fixed, b"", name)
            self.pos += spec.bitmap_entry_size(extra_size, name_size) - (
                spec.BITMAP_DIR_ENTRY_SIZE + name_size + extra_size
            )
            count = entry.bitmap_table_size
            # Only the entries the dump shows are read: 512 bitmaps naming
            # one 1 MiB table must not read it 512 times.
            shown = min(count, MAX_DUMPED_TABLE_ENTRIES - self.table_entries)
            self.table_entries += shown
            self.where = f"the bitmap table of bitmap {index} ({count} entries)"
            table = self.reader.read(entry.bitmap_table_offset, shown * spec.BITMAP_TABLE_ENTRY_SIZE)
            words = np.frombuffer(table[: len(table) // 8 * 8], ">u8").astype(np.uint64)
            bitmap = _Bitmap(entry, words, count - shown)
            ext.bitmap_list.append(bitmap)
            if not name.isascii():
                self.errors.append(f"bitmap {index} has a name that is not ASCII ({label(name)}); printed with escapes")
            if entry.bitmap_table_offset + count * spec.BITMAP_TABLE_ENTRY_SIZE > self.reader.size:
                raise _Stop(
                    f"the bitmap table of bitmap {index} ({count} entries at {entry.bitmap_table_offset:#x}) "
                    f"is cut off by the end of the file ({self.reader.size} bytes)"
                )


def build_dump(path: str, as_json: bool = False, document: bool = False, remote: Any = None) -> Dump:
    """The standard dump of the image at ``path`` (text or JSON).  JSON is
    two documents, the header then the extensions, as qcow2.py -j prints
    them; with ``document`` one object holds both.  ``path`` may be a URL
    (``remote``: its storage options and timeout, see docs/remote.md).

    Running out of memory is reported in :attr:`Dump.error`, naming what was
    being read, not raised."""
    reader = Reader(open_source(path, remote))
    try:
        return _build(reader, as_json, document)
    except MemoryError as exc:
        return Dump("", f"{exception_text(exc)} while dumping {getattr(exc, 'where', 'the image')}")
    finally:
        reader.close()


def _build(reader: Reader, as_json: bool, document: bool = False) -> Dump:
    """The dump of an open image (see :func:`build_dump`)."""
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
    except MemoryError as exc:
        exc.where = walker.where  # type: ignore[attr-defined]
        raise
    try:
        if as_json:
            text = _render_json(header, extensions, walker.extensions_omitted, document)
        else:
            text = _render_text(header, extensions, walker.extensions_omitted)
    except _Stop as stop:
        return Dump("", str(stop))
    except MemoryError as exc:
        exc.where = "the output"  # type: ignore[attr-defined]
        raise
    return Dump(text, error or (walker.errors[0] if walker.errors else None))


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


def _omitted_line(count: int, what: str, limit: int) -> str:
    """The one line that stands for what the dump left out."""
    return f"... {count} more {what} not shown (qcow2lint dumps at most {limit})\n"


def _render_text(header: Header, extensions: list[_Extension], extensions_omitted: int = 0) -> str:
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
            out.append(_line("data", _shown(ext.data_str or "")))
        else:
            for name, fmt in _BITMAP_EXT_FIELDS:
                out.append(_line(name, _fmt(fmt, getattr(ext.bitmaps, name))))
            for bitmap in ext.bitmap_list:
                out.append("\n")
                out.append(_line("Bitmap name", _shown(_name(bitmap.entry.name_bytes))))
                for name, entry_fmt in _ENTRY_FIELDS:
                    value = getattr(bitmap.entry, name)
                    out.append(_line(name, _flags(value) if entry_fmt is None else _fmt(entry_fmt, value)))
                out.append(_bitmap_table_text(bitmap.table, header))
                if bitmap.omitted:
                    out.append(_omitted_line(bitmap.omitted, "bitmap table entries", MAX_DUMPED_TABLE_ENTRIES))
            if ext.bitmaps_omitted:
                out.append("\n")
                out.append(_omitted_line(ext.bitmaps_omitted, "bitmap directory entries", MAX_DUMPED_BITMAPS))
        out.append("\n")
    if extensions_omitted:
        out.append(_omitted_line(extensions_omitted, "header extensions", MAX_DUMPED_EXTENSIONS))
        out.append("\n")
    return "".join(out)


def _bitmap_table_text(table: np.ndarray, header: Header) -> str:
    rows = [f"{'Bitmap table':<14} {'type':<15} {'size':<12} {'offset'}\n"]
    kinds = bitmap_entry_kinds(table)
    offsets = (table & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)).tolist()
    cluster_size = _cluster_size_str(header) if (kinds == 2).any() else ""
    for index, (kind, offset) in enumerate(zip(kinds.tolist(), offsets)):
        size = cluster_size if kind == 2 else "0"
        rows.append(f"{index:<14} {BITMAP_ENTRY_KINDS[kind]:<15} {size:<12} {offset}\n")
    return "".join(rows)


def _render_json(
    header: Header, extensions: list[_Extension], extensions_omitted: int = 0, document: bool = False
) -> str:
    items: list[dict[str, Any]] = []
    for ext in extensions:
        item: dict[str, Any] = {
            "name": spec.EXT_NAMES.get(ext.magic, "<unknown>"),
            "magic": ext.magic,
            "length": ext.length,
        }
        if ext.bitmaps is None:
            item["data_str"] = ext.data_str
        else:
            data: dict[str, Any] = {name: getattr(ext.bitmaps, name) for name, _ in _BITMAP_EXT_FIELDS}
            data["bitmap_directory"] = [_bitmap_json(bitmap) for bitmap in ext.bitmap_list]
            if ext.bitmaps_omitted:
                data["bitmap_directory_omitted"] = ext.bitmaps_omitted
            item["data"] = data
        items.append(item)
    if extensions_omitted:
        items.append({"name": "<omitted>", "omitted": extensions_omitted})
    if document:
        return json.dumps({"header": _header_values(header), "header_extensions": items}, indent=4) + "\n"
    # qcow2.py -j: the header's document, a blank line, the extensions' document
    return json.dumps(_header_values(header), indent=4) + "\n\n" + json.dumps(items, indent=4) + "\n"


def _bitmap_json(bitmap: _Bitmap) -> dict[str, Any]:
    table = bitmap.table
    kinds = bitmap_entry_kinds(table).tolist()
    offsets = (table & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)).tolist()
    reserved = (table & np.uint64(spec.BME_TABLE_ENTRY_RESERVED_MASK)).tolist()
    item: dict[str, Any] = {
        "name": _name(bitmap.entry.name_bytes),
        **{name: getattr(bitmap.entry, name) for name, _ in _ENTRY_FIELDS},
        "bitmap_table": [
            {"type": BITMAP_ENTRY_KINDS[kind], "offset": offset, "reserved": res}
            for kind, offset, res in zip(kinds, offsets, reserved)
        ],
    }
    if bitmap.omitted:
        item["bitmap_table_omitted"] = bitmap.omitted
    return item
