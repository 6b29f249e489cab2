"""Bytes to records: reads everything, judges nothing.

The reader opens the image read-only and follows every pointer only after a
bounds check against the file size.  It never raises on a spec violation:
whatever it cannot read (a structure past the end of the file, a hostile
count) becomes a :class:`~qcow2lint.records.ReadProblem` for rules to report.
It raises :class:`ImageError` only when the file cannot be read at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, cast

import numpy as np
from attrs import evolve

from qcow2lint import arrays, spec
from qcow2lint.filekind import ImageError
from qcow2lint.memo import Memo
from qcow2lint.records import (
    BackingFormat,
    BitmapDirectoryEntry,
    BitmapsExtension,
    BitmapTable,
    CompressedCluster,
    CryptoHeaderPointer,
    DataFileName,
    EncryptionArea,
    ExtensionArea,
    FeatureNameEntry,
    FeatureTable,
    Header,
    HeaderExtension,
    Image,
    L1Table,
    L2Tables,
    LuksHeader,
    Payload,
    ReadProblem,
    RefcountBlock,
    RefcountTable,
    SnapshotEntry,
    SnapshotTable,
)
from qcow2lint.results import DeepStopped
from qcow2lint.source import LocalSource, Source, open_source

#: How many bytes of L2 tables to read and judge at once.
L2_BATCH_BYTES = 1 << 20
#: Misaligned L2 offsets are still parsed (as QEMU does), but only this many.
MAX_MISALIGNED_L2_TABLES = 1024
#: Per-structure cap on recorded problems; the rest are summed up in one.
MAX_PROBLEMS_PER_KIND = 1000
#: Extra data kept per bitmap or snapshot entry (QEMU allows at most 1024).
MAX_EXTRA_DATA_KEPT = 4096
#: ``--deep`` budget per image: at most this many payload records (one per
#: distinct compressed payload of an L2 batch) ...
MAX_DEEP_PAYLOADS = 1 << 17
#: ... and at most this many bytes read and decompressed, counting each
#: record as its bytes read plus ``cluster_size`` (the most it may inflate
#: to).  Past either the deep check stops (one ``DeepStopped`` record says
#: where); see docs/cost-model.md.
MAX_DEEP_BYTES = 1 << 30
#: The first read of an image: the fixed header fields and then some (the
#: rest up to header_length is read only when an image declares more).
HEAD_GUESS = 4096
#: A snapshot table entry's usual size (its fixed part, QEMU's 24 bytes of
#: extra data, a short id and name), for planning the table's first read.
SNAPSHOT_ENTRY_GUESS = 80
#: A bitmap directory entry's usual size (24 bytes, a name, padding), for
#: bounding the directory's planned read.
BITMAP_ENTRY_GUESS = 64
#: How many bytes of L2 tables or refcount blocks one planned window holds
#: (a remote source fetches a window at once and releases it after use).
WINDOW_BYTES = 32 << 20


__all__ = ["ImageError", "ImageFile", "Reader", "open_image", "read_image"]


def _u64(raw: bytes) -> np.ndarray:
    """Big-endian u64 words to a native uint64 array (one pass, no copy)."""
    words = np.frombuffer(bytearray(raw[: len(raw) // 8 * 8]), dtype=np.uint64)
    if np.little_endian:
        words.byteswap(inplace=True)
    return words


class Reader:
    """Bounded random access to one image's bytes (a :class:`~qcow2lint.source.Source`),
    plus the table walkers."""

    def __init__(self, source: Source | str) -> None:
        if isinstance(source, str):
            source = LocalSource(source)
        self.source = source
        #: What reports name: the path, or the URL without credentials.
        self.path = source.name
        self.size = source.size
        #: Bytes the image really holds (a sparse file holds fewer than its
        #: size): bounds the work that a count field alone would set.
        self.allocated = source.allocated
        # The source's own methods, bound once: the table walkers call
        # them in their loops.
        self.read: Callable[[int, int], bytes] = source.read
        self.read_into: Callable[[memoryview, int], int] = source.read_into
        #: Whether the source uses the plan (a local file does not: the
        #: costlier plans are not even computed for it).
        self.planning = bool(getattr(source, "plans", True))

    @property
    def fd(self) -> int:
        """A local file's descriptor (-1 once closed, and for a remote image)."""
        return int(getattr(self.source, "fd", -1))

    def plan(self, ranges: Iterable[tuple[int, int]], level: str) -> None:
        """Tell the source every range the next step reads (see qcow2lint.source.LEVELS)."""
        self.source.prefetch(ranges, level)

    def close(self) -> None:
        """Close the source (again is a no-op)."""
        self.source.close()

    # --- structures -----------------------------------------------------------

    def problem(self, structure: str, offset: int, length: int, available: int, what: str) -> ReadProblem:
        """A ReadProblem for a structure that is not wholly inside the file."""
        if available <= 0:
            message = f"{what} at {offset:#x} ({length} bytes) lies past the end of the file ({self.size} bytes)"
        else:
            message = (
                f"{what} at {offset:#x} ({length} bytes) is cut off by the end of the file "
                f"({self.size} bytes): {length - available} bytes missing"
            )
        return ReadProblem(structure, offset, length, max(offset + length - self.size, 0), message)

    def u64_table(self, offset: int, count: int, structure: str, what: str, problems: list[ReadProblem]) -> np.ndarray:
        """``count`` u64 words at ``offset``, bounded by the file size."""
        length = count * 8
        # Read straight into the array's buffer: one copy of the table.
        words = np.zeros(count, np.uint64)
        got = self.read_into(words.data.cast("B"), offset) if offset < self.size else 0
        if got < length:
            problems.append(self.problem(structure, offset, length, got, what))
            # QEMU reads zeros past the end of the file: an entry the end cuts
            # keeps its leading bytes (an L1 entry can keep its flag byte and
            # lose its offset), the entries after it read as 0.  Zero-filled up
            # to the table's size, but never to more bytes than the file holds.
            whole = got + (-got % 8)
            words = words[: min(length, max(self.size, whole)) // 8].copy()
        if np.little_endian:
            words.byteswap(inplace=True)
        return words

    def extensions(self, header: Header, start: int) -> tuple[tuple[HeaderExtension, ...], ExtensionArea]:
        """Walk the extension area as QEMU does (spec, "Header extensions").

        The area ends at backing_file_offset when that is set, else at the
        end of cluster 0; the walk stops at an end marker or at the first
        extension that overruns the area (nothing after it can be trusted).
        """
        cluster_size = header.cluster_size
        end = min(header.backing_file_offset or cluster_size, cluster_size)
        found: list[HeaderExtension] = []
        offset, stop, marker, marker_length = start, "area-end", None, 0
        while offset < end:
            framing = self.read(offset, spec.EXT_FRAMING_SIZE)
            if len(framing) < spec.EXT_FRAMING_SIZE:
                stop = "eof"
                break
            magic, length = int.from_bytes(framing[:4], "big"), int.from_bytes(framing[4:], "big")
            if magic == spec.EXT_END:
                stop, marker, marker_length = "end-marker", offset, length
                break
            padded = spec.round_up(length, 8)
            data_offset = offset + spec.EXT_FRAMING_SIZE
            body = self.read(data_offset, min(padded, max(end - data_offset, 0), cluster_size))
            ext = HeaderExtension(
                index=len(found),
                file_offset=offset,
                magic=magic,
                length=length,
                data=body[:length],
                padding=body[length:padded],
                payload=decode_payload(magic, body[:length], data_offset),
                area_end=end,
            )
            found.append(ext)
            if ext.overruns_area:
                stop = "overrun"
                break
            offset += spec.EXT_FRAMING_SIZE + padded
        return tuple(found), ExtensionArea(start, end, marker, stop, marker_length)

    def entry_parts(self, offset: int, fixed_size: int, extra_size: int, tail_size: int) -> tuple[bytes, bytes, bytes]:
        """The fixed part, extra data (its head only, when hostile) and tail
        of a variable-size directory or snapshot table entry."""
        extra = self.read(offset + fixed_size, min(extra_size, MAX_EXTRA_DATA_KEPT))
        tail = self.read(offset + fixed_size + extra_size, tail_size)
        return self.read(offset, fixed_size), extra, tail

    def bitmap_entries(self, offset: int) -> Iterator[tuple[BitmapDirectoryEntry, bool]]:
        """Bitmap directory entries one after another from ``offset``.

        Yields each entry and whether it lies wholly inside the file; stops
        after the first one that does not.  The caller decides how many it
        wants.
        """
        position, index = offset, 0
        fixed_size, fields = spec.BITMAP_DIR_ENTRY_SIZE, spec.BITMAP_ENTRY_FIELDS
        while True:
            fixed = self.read(position, fixed_size)
            if len(fixed) < fixed_size:
                return
            extra_size = spec.field(fixed, fields, "extra_data_size", 4)
            name_size = spec.field(fixed, fields, "name_size", 2)
            tail_size = spec.bitmap_entry_size(extra_size, name_size) - fixed_size - extra_size
            fixed, extra, tail = self.entry_parts(position, fixed_size, extra_size, tail_size)
            entry = BitmapDirectoryEntry.decode(index, position, fixed, extra, tail)
            complete = position + entry.size <= self.size
            yield entry, complete
            if not complete:
                return
            position += entry.size
            index += 1


def _walked_by_qemu(table: L1Table, cluster_size: int) -> bool:
    """Whether QEMU's check walks this L1 table: the active one always, a
    snapshot's only when aligned and not too large."""
    return table.active or (
        table.file_offset % cluster_size == 0 and table.expected_entries <= spec.MAX_L1_SIZE // spec.L1_ENTRY_SIZE
    )


def _grouped_l1_tables(image: Image, cluster_size: int) -> list[tuple[L1Table, int]]:
    """The L1 tables, snapshots' tables that are the same table (one shared
    array, see ``_snapshots``) and walked alike grouped, with how many each
    stands for: 65,536 snapshots of one L1 table cost one table."""
    groups: dict[tuple[int, bool, bool], list[Any]] = {}
    for table in image.l1_tables():
        key = (id(table.entries), table.active, _walked_by_qemu(table, cluster_size))
        if table.active:
            key = (-1, True, True)
        group = groups.setdefault(key, [table, 0])
        group[1] += 1
    return [(table, copies) for table, copies in groups.values()]


def _has_snapshot_table(header: Header) -> bool:
    """Whether the snapshot table is read at all: over QEMU's limit
    `qemu-img check` stops before reading any entry (snapshot-count-too-large
    flags the count), so none is read here either."""
    return 0 < header.nb_snapshots <= spec.MAX_SNAPSHOTS


def cluster_runs(offsets: np.ndarray, cluster_size: int) -> list[tuple[int, int]]:
    """Sorted cluster offsets as (offset, length) runs of adjacent clusters."""
    if not len(offsets):
        return []
    breaks = np.flatnonzero(np.diff(offsets) != np.uint64(cluster_size)) + 1
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    ends = np.concatenate([breaks, [len(offsets)]]).astype(np.int64)
    return [
        (int(offsets[first]), int(end - first) * cluster_size) for first, end in zip(starts.tolist(), ends.tolist())
    ]


def decode_payload(magic: int, data: bytes, data_offset: int) -> Payload | None:
    """The typed payload of a known extension; None for unknown magics."""
    if magic == spec.EXT_BACKING_FORMAT:
        return BackingFormat(data)
    if magic == spec.EXT_DATA_FILE:
        return DataFileName(data)
    if magic == spec.EXT_BITMAPS:
        return BitmapsExtension.from_bytes(data, data_offset)
    if magic == spec.EXT_CRYPTO_HEADER:
        raw = data[: spec.CRYPTO_EXT_SIZE].ljust(spec.CRYPTO_EXT_SIZE, b"\0")
        return CryptoHeaderPointer(int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))
    if magic == spec.EXT_FEATURE_TABLE:
        size = spec.FEATURE_TABLE_ENTRY_SIZE
        return FeatureTable(
            tuple(
                FeatureNameEntry(data_offset + start, data[start], data[start + 1], data[start + 2 : start + size])
                for start in range(0, len(data) - size + 1, size)
            )
        )
    return None


def header_is_readable(header: Header) -> bool:
    """Whether the header is sane enough to follow its pointers at all.

    A header cut short by the end of the file reads as zeros past it, as
    QEMU reads it (header-file-too-short reports the cut); it only needs
    the magic, the version and the cluster size.
    """
    return (
        header.bytes_available >= spec.HEADER_MIN_READABLE
        and header.magic == spec.QCOW_MAGIC
        and header.version in spec.SUPPORTED_VERSIONS
        and spec.MIN_CLUSTER_BITS <= header.cluster_bits <= spec.MAX_CLUSTER_BITS
    )


class _ImageReader(Reader):
    """Builds the Image record, then streams its big tables on demand (for
    :class:`ImageFile`)."""

    def build(self) -> Image:
        # The header: its fixed fields, then (rarely) up to header_length.
        head = self.read(0, HEAD_GUESS)
        header = Header.from_bytes(head)
        wanted = min(max(header.header_length, spec.V3_HEADER_LENGTH), 1 << spec.MAX_CLUSTER_BITS)
        if len(head) < wanted and len(head) == HEAD_GUESS:
            head = self.read(0, wanted)
            header = Header.from_bytes(head)
        problems: list[ReadProblem] = []
        if not header_is_readable(header):
            return Image(self.path, self.size, header, readable=False)

        cluster_size = header.cluster_size
        minimum = spec.V2_HEADER_LENGTH if header.version == 2 else spec.V3_HEADER_LENGTH
        area_end = min(header.backing_file_offset or cluster_size, cluster_size)
        backing_range = (header.backing_file_offset, min(header.backing_file_size, cluster_size))
        self.plan([(0, area_end), backing_range] if header.backing_file_offset else [(0, area_end)], "area")
        extensions, area = self.extensions(header, max(header.header_length, minimum))
        backing = None
        if header.backing_file_offset:
            backing = self.read(*backing_range)

        bitmaps_ext = [ext for ext in extensions if isinstance(ext.payload, BitmapsExtension)]
        bitmaps = cast(BitmapsExtension, bitmaps_ext[-1].payload) if bitmaps_ext else None
        # A bitmaps extension shorter than 24 bytes has no directory pointer
        # (its payload is zero-filled there): no directory to walk.
        whole = bitmaps if bitmaps_ext and len(bitmaps_ext[-1].data) >= spec.BITMAPS_EXT_SIZE else None

        # QEMU refuses an L1 table over MAX_L1_SIZE and a refcount table over
        # MAX_REFTABLE_SIZE (rules flag both): nothing past those caps is read.
        l1_read = min(header.l1_size, spec.MAX_L1_SIZE // spec.L1_ENTRY_SIZE)
        reftable_entries = header.refcount_table_clusters * cluster_size // spec.REFTABLE_ENTRY_SIZE
        reftable_read = min(reftable_entries, spec.MAX_REFTABLE_SIZE // spec.REFTABLE_ENTRY_SIZE)
        # Everything the header and its extensions point to, in one round.
        tables = [
            (header.l1_table_offset, l1_read * spec.L1_ENTRY_SIZE),
            (header.refcount_table_offset, reftable_read * spec.REFTABLE_ENTRY_SIZE),
            *self._snapshot_guess(header),
            *self._encryption_ranges(header, extensions),
        ]
        if whole is not None:
            # The directory's size, but no more than nb_bitmaps usual entries:
            # the walk reads entry by entry, and a hostile size field alone
            # must not make a remote source fetch 64 MiB.
            wanted = max(min(whole.nb_bitmaps, spec.MAX_BITMAPS), 1) * BITMAP_ENTRY_GUESS
            directory_size = min(whole.bitmap_directory_size, spec.MAX_BITMAP_DIRECTORY_SIZE, wanted)
            tables.append((whole.bitmap_directory_offset, directory_size))
        self.plan(tables, "tables")

        bitmap_problems: list[ReadProblem] = []
        directory = self._bitmap_directory(whole, bitmap_problems)
        table_problems: list[ReadProblem] = []
        l1 = L1Table(
            header.l1_table_offset,
            header.l1_size,
            self.u64_table(header.l1_table_offset, l1_read, "l1", "the active L1 table", table_problems),
        )
        reftable = RefcountTable(
            header.refcount_table_offset,
            reftable_entries,
            self.u64_table(
                header.refcount_table_offset, reftable_read, "reftable", "the refcount table", table_problems
            ),
        )
        snapshot_problems: list[ReadProblem] = []
        entries, cut_table = self._snapshot_entries(header, snapshot_problems)
        # What those tables point to, in one round: bitmap tables and the
        # snapshots' L1 tables (within the budgets the reads below keep).
        bitmap_counts = self._bitmap_table_counts(directory)
        l1_counts = self._snapshot_l1_counts(entries)
        self.plan(
            [(offset, count * spec.BITMAP_TABLE_ENTRY_SIZE) for (offset, _), count in bitmap_counts.items()]
            + [(offset, count * spec.L1_ENTRY_SIZE) for (offset, _), count in l1_counts.items()],
            "second",
        )
        bitmap_tables = self._bitmap_tables(header, directory, bitmap_counts, bitmap_problems)
        snapshots: SnapshotTable | None = cut_table
        snapshot_l1: tuple[L1Table, ...] = ()
        if cut_table is None and _has_snapshot_table(header):
            snapshots, snapshot_l1 = self._snapshot_l1(header, entries, l1_counts, snapshot_problems)
        problems += bitmap_problems + table_problems + snapshot_problems
        encryption = self._encryption(header, extensions, problems)
        image = Image(
            self.path,
            self.size,
            header,
            readable=True,
            extensions=extensions,
            backing_file_name=backing,
            bitmaps=bitmaps,
            bitmap_directory=directory,
            bitmap_tables=bitmap_tables,
            l1=l1,
            refcount_table=reftable,
            snapshots=snapshots,
            snapshot_l1_tables=snapshot_l1,
            extension_area=area,
            encryption=encryption,
        )
        problems += self._table_problems(image)
        return evolve(image, problems=tuple(problems))

    def _bitmap_directory(
        self, ext: BitmapsExtension | None, problems: list[ReadProblem]
    ) -> tuple[BitmapDirectoryEntry, ...]:
        """The bitmap directory as QEMU walks it.

        QEMU walks the directory by its size; nb_bitmaps must match the
        count.  The walk goes on past the size while fewer than nb_bitmaps
        entries were found, so that both mismatches can be reported.
        """
        if ext is None:
            return ()
        entries: list[BitmapDirectoryEntry] = []
        dir_end = ext.bitmap_directory_offset + min(ext.bitmap_directory_size, spec.MAX_BITMAP_DIRECTORY_SIZE)
        wanted = min(ext.nb_bitmaps, spec.MAX_BITMAPS)
        for entry, _ in self.bitmap_entries(ext.bitmap_directory_offset):
            if not (entry.file_offset < dir_end or len(entries) < wanted) or len(entries) > spec.MAX_BITMAPS:
                break
            if entry.file_offset + entry.size > dir_end:  # entries are made inside by default
                entry = evolve(entry, inside_directory=False)
            entries.append(entry)
        read_end = entries[-1].file_offset + entries[-1].size if entries else ext.bitmap_directory_offset
        needed = max(dir_end, read_end)
        if needed > self.size:
            problems.append(
                self.problem(
                    "bitmap-directory",
                    ext.bitmap_directory_offset,
                    needed - ext.bitmap_directory_offset,
                    max(self.size - ext.bitmap_directory_offset, 0),
                    "the bitmap directory",
                )
            )
        return tuple(entries)

    def _table_counts(self, tables: Iterable[tuple[int, int]], entry_size: int) -> dict[tuple[int, int], int]:
        """How many entries of each distinct table (offset, entries) are read,
        in first-use order.  Hostile directories and snapshot tables may
        point thousands of large tables at the same bytes: all tables
        together are read up to the file's size (or 64 MiB)."""
        budget = max(self.allocated, 64 << 20)
        counts: dict[tuple[int, int], int] = {}
        for key in tables:
            if key not in counts:
                counts[key] = min(key[1], budget // entry_size)
                budget -= counts[key] * entry_size
        return counts

    def _bitmap_table_counts(self, entries: tuple[BitmapDirectoryEntry, ...]) -> dict[tuple[int, int], int]:
        """How many entries of each distinct bitmap table (offset, size) are read."""

        def table(entry: BitmapDirectoryEntry) -> tuple[int, int]:
            # A table at offset 0 or beyond QEMU's size limit is not a table:
            # reading it would judge the header or junk as bitmap entries.
            size = entry.bitmap_table_size if entry.bitmap_table_offset else 0
            return entry.bitmap_table_offset, size if size <= spec.BME_MAX_TABLE_SIZE else 0

        return self._table_counts(map(table, entries), spec.BITMAP_TABLE_ENTRY_SIZE)

    def _bitmap_tables(
        self,
        header: Header,
        entries: tuple[BitmapDirectoryEntry, ...],
        counts: dict[tuple[int, int], int],
        problems: list[ReadProblem],
    ) -> tuple[BitmapTable, ...]:
        """Every bitmap table (``counts`` entries of each read), with the
        data cluster holding each bitmap's last bit."""
        # Entries naming the same table (offset, size) share one read-only
        # array, read once.
        seen: dict[tuple[int, int], tuple[np.ndarray, int]] = {}
        words_of = []
        for entry in entries:
            count = entry.bitmap_table_size if entry.bitmap_table_offset else 0
            count = count if count <= spec.BME_MAX_TABLE_SIZE else 0
            key = (entry.bitmap_table_offset, count)
            path, what = f"{entry.path}.table", f"the bitmap table of {entry.path}"
            if key in seen:
                words, got = seen[key]
                if got >= 0:  # the same table, cut by EOF: each bitmap reports it
                    problems.append(self.problem(path, key[0], count * spec.BITMAP_TABLE_ENTRY_SIZE, got, what))
            else:
                count = counts[key]
                before = len(problems)
                words = self.u64_table(entry.bitmap_table_offset, count, path, what, problems)
                words.flags.writeable = False
                cut = len(problems) > before and count == key[1]
                seen[key] = (words, max(self.size - key[0], 0) if cut else -1)
            words_of.append(words)
        tails = [self._bitmap_tail_at(header, entry, words) for entry, words in zip(entries, words_of)]
        self.plan([(tail[2], header.cluster_size) for tail in tails if len(tail) > 2], "tails")
        tables = []
        for entry, words, tail in zip(entries, words_of, tails):
            fields: dict[str, Any] = {}
            if tail:
                fields["bit_count"] = tail[0]
            if len(tail) > 2:
                fields.update(tail_index=tail[1], tail_cluster=self.read(tail[2], header.cluster_size))
            tables.append(
                BitmapTable(
                    entry.index,
                    entry.name,
                    entry.bitmap_table_offset,
                    entry.bitmap_table_size,
                    words,
                    **fields,
                )
            )
        return tuple(tables)

    def _encryption(
        self, header: Header, extensions: tuple[HeaderExtension, ...], problems: list[ReadProblem]
    ) -> EncryptionArea | None:
        """The area the (last) encryption header pointer names, with its LUKS
        header and the zero tail up to the cluster boundary."""
        pointers = [ext.payload for ext in extensions if isinstance(ext.payload, CryptoHeaderPointer)]
        if not pointers:
            return None
        offset, length = pointers[-1].offset, pointers[-1].length
        end = offset + length
        if end > self.size:
            problems.append(self.problem("encryption", offset, length, self.size - offset, "the encryption area"))
        raw = self.read(offset, spec.LUKS_HEADER_SIZE)
        luks = LuksHeader.from_bytes(raw, offset) if raw else None
        tail_length = min(spec.round_up(end, header.cluster_size) - end, header.cluster_size)
        return EncryptionArea(offset, length, luks, self.read(end, tail_length))

    def _bitmap_tail_at(self, header: Header, entry: BitmapDirectoryEntry, table: np.ndarray) -> tuple[int, ...]:
        """Where a bitmap's last bit lies: () for an absurd granularity, else
        its bit count, plus the table index and the data cluster's offset
        when that cluster is serialized."""
        if entry.granularity_bits >= 64:
            return ()
        disk_length = spec.disk_length(header.size)  # QEMU's disk length (§1.9)
        bits = -(-disk_length // (1 << entry.granularity_bits))
        last_byte = (bits - 1) // 8
        index = last_byte // header.cluster_size
        if bits == 0 or index >= len(table):
            return (bits,)
        value = int(table[index])
        offset = value & spec.BME_TABLE_ENTRY_OFFSET_MASK
        if offset == 0 or value & spec.BME_TABLE_ENTRY_FLAG_ALL_ONES:
            return (bits,)
        return (bits, index, offset)

    def _encryption_ranges(self, header: Header, extensions: tuple[HeaderExtension, ...]) -> list[tuple[int, int]]:
        """What :meth:`_encryption` reads: the LUKS header and the tail after the area."""
        pointers = [ext.payload for ext in extensions if isinstance(ext.payload, CryptoHeaderPointer)]
        if not pointers:
            return []
        end = pointers[-1].offset + pointers[-1].length
        tail_length = min(spec.round_up(end, header.cluster_size) - end, header.cluster_size)
        return [(pointers[-1].offset, spec.LUKS_HEADER_SIZE), (end, tail_length)]

    def _snapshot_guess(self, header: Header) -> list[tuple[int, int]]:
        """A first guess at the snapshot table's bytes, from nb_snapshots
        (the walk plans the rest when entries are larger)."""
        if not _has_snapshot_table(header):
            return []
        return [(header.snapshot_offset, min(header.nb_snapshots * SNAPSHOT_ENTRY_GUESS, spec.MAX_SNAPSHOTS_SIZE))]

    def _snapshots(
        self, header: Header, problems: list[ReadProblem]
    ) -> tuple[SnapshotTable | None, tuple[L1Table, ...]]:
        """The snapshot table and each snapshot's L1 table (bounded)."""
        if not _has_snapshot_table(header):
            return None, ()
        self.plan(self._snapshot_guess(header), "tables")
        entries, cut_table = self._snapshot_entries(header, problems)
        if cut_table is not None:
            return cut_table, ()
        counts = self._snapshot_l1_counts(entries)
        self.plan([(offset, count * spec.L1_ENTRY_SIZE) for (offset, _), count in counts.items()], "second")
        return self._snapshot_l1(header, entries, counts, problems)

    def _snapshot_entries(
        self, header: Header, problems: list[ReadProblem]
    ) -> tuple[list[SnapshotEntry], SnapshotTable | None]:
        """The snapshot table's entries; a table QEMU refuses for its size
        comes back as the second value (its entries are not kept)."""
        entries: list[SnapshotEntry] = []
        if not _has_snapshot_table(header):
            return entries, None
        position = header.snapshot_offset
        planned = position + min(header.nb_snapshots * SNAPSHOT_ENTRY_GUESS, spec.MAX_SNAPSHOTS_SIZE)
        fixed_size, fields = spec.SNAPSHOT_HEADER_SIZE, spec.SNAPSHOT_FIELD_OFFSETS
        length = 0  # the table's size as QEMU counts it (snapshot-table-too-big)
        for index in range(min(header.nb_snapshots, spec.MAX_SNAPSHOTS)):
            if position + fixed_size > planned:
                # Larger entries than guessed: plan the rest of the table at
                # the size of those read so far.
                average = max((position - header.snapshot_offset) // max(index, 1), fixed_size)
                rest = min((header.nb_snapshots - index) * average, spec.MAX_SNAPSHOTS_SIZE - length)
                planned = position + max(rest, fixed_size)
                self.plan([(position, planned - position)], "tables")
            fixed = self.read(position, fixed_size)
            if len(fixed) < fixed_size:
                problems.append(
                    self.problem("snapshots", position, fixed_size, len(fixed), f"snapshot table entry {index}")
                )
                break
            extra_size = spec.field(fixed, fields, "extra_data_size", 4)
            id_size, name_size = spec.field(fixed, fields, "id_str_size", 2), spec.field(fixed, fields, "name_size", 2)
            size = spec.snapshot_entry_size(id_size, name_size, extra_size)
            if position + size > planned:
                self.plan([(position, size)], "tables")
            parts = self.entry_parts(position, fixed_size, extra_size, size - fixed_size - extra_size)
            entries.append(SnapshotEntry.decode(index, position, *parts))
            length = spec.round_up(length, 8) + fixed_size + extra_size + id_size + name_size
            if length > spec.MAX_SNAPSHOTS_SIZE:
                # QEMU refuses a table over QCOW_MAX_SNAPSHOTS_SIZE and keeps
                # none of it: neither are its entries nor their L1 tables.
                return entries, SnapshotTable(header.snapshot_offset, header.nb_snapshots, (), entries[-1], length)
            # The padding after the last entry is not part of the table: QEMU
            # does not write it, so a file may end right after the last name.
            used = spec.snapshot_entry_used(id_size, name_size, extra_size)
            if position + used > self.size:
                problems.append(
                    self.problem("snapshots", position, used, self.size - position, f"snapshot table entry {index}")
                )
                break
            position += size
        return entries, None

    def _snapshot_l1_counts(self, entries: list[SnapshotEntry]) -> dict[tuple[int, int], int]:
        """How many entries of each distinct snapshot L1 table (offset, size) are read."""
        most = spec.MAX_L1_SIZE // spec.L1_ENTRY_SIZE
        return self._table_counts(
            ((entry.l1_table_offset, min(entry.l1_size, most)) for entry in entries), spec.L1_ENTRY_SIZE
        )

    def _snapshot_l1(
        self,
        header: Header,
        entries: list[SnapshotEntry],
        counts: dict[tuple[int, int], int],
        problems: list[ReadProblem],
    ) -> tuple[SnapshotTable, tuple[L1Table, ...]]:
        """The snapshot table record and each snapshot's L1 table."""
        l1_tables = []
        # Snapshots often share one L1 table: each distinct table is read once
        # (and its array shared, read-only); the budget counts distinct reads.
        seen: dict[tuple[int, int], tuple[np.ndarray, bool]] = {}
        for entry in entries:
            count = min(entry.l1_size, spec.MAX_L1_SIZE // spec.L1_ENTRY_SIZE)
            path = f"{entry.path}.l1"
            key = (entry.l1_table_offset, count)
            if key not in seen:
                count = counts[key]
                before = len(problems)
                words = self.u64_table(entry.l1_table_offset, count, path, f"the L1 table of {entry.path}", problems)
                words.flags.writeable = False
                seen[key] = (words, len(problems) > before)
            else:
                words, cut = seen[key]
                if cut:  # the same table, cut by EOF: each snapshot reports it
                    problems.append(
                        self.problem(
                            path,
                            entry.l1_table_offset,
                            key[1] * spec.L1_ENTRY_SIZE,
                            max(self.size - entry.l1_table_offset, 0),
                            f"the L1 table of {entry.path}",
                        )
                    )
            l1_tables.append(L1Table(entry.l1_table_offset, entry.l1_size, words, entry.index, path))
        return SnapshotTable(header.snapshot_offset, header.nb_snapshots, tuple(entries)), tuple(l1_tables)

    # --- L2 tables and refcount blocks, streamed ---------------------------------

    def _l2_offsets(self, image: Image) -> dict[str, np.ndarray]:
        """Every distinct L2 table offset of every L1 table, sorted, with how
        many L1 entries reference it (of the L1 tables QEMU's check walks:
        the active one and every snapshot's that is aligned and not too
        large), how many of those are active, and the first active L1 index
        (-1 when only snapshots reference it)."""
        cluster_size = image.header.cluster_size
        parts, weights, actives, indices = [], [], [], []
        for table, copies in _grouped_l1_tables(image, cluster_size):
            offsets = table.entries & np.uint64(spec.L1E_OFFSET_MASK)
            # QEMU's check walks every non-zero entry: one with flag or
            # reserved bits and a zero offset (say, a COPIED bit left by a
            # cut that zeroed the rest) makes it read cluster 0 as an L2 table.
            used = np.flatnonzero(table.entries)
            counted = copies if _walked_by_qemu(table, cluster_size) else 0
            parts.append(offsets[used])
            weights.append(np.full(len(used), counted, np.int64))
            actives.append(np.full(len(used), int(table.active), np.int64))
            indices.append(used if table.active else np.full(len(used), -1, np.int64))
        every = np.concatenate(parts) if parts else np.empty(0, np.uint64)
        unique, inverse = arrays.unique_inverse(every)
        first_l1 = np.full(len(unique), np.iinfo(np.int64).max, np.int64)
        index = np.concatenate(indices) if indices else np.empty(0, np.int64)
        np.minimum.at(first_l1, inverse, np.where(index < 0, np.iinfo(np.int64).max, index))
        return {
            "offsets": unique,
            "refs": np.bincount(inverse, np.concatenate(weights) if weights else None, len(unique)).astype(np.int64),
            "active_refs": np.bincount(inverse, np.concatenate(actives) if actives else None, len(unique)).astype(
                np.int64
            ),
            "first_l1": np.where(first_l1 == np.iinfo(np.int64).max, -1, first_l1),
        }

    def _table_problems(self, image: Image) -> list[ReadProblem]:
        """ReadProblems for L2 tables and refcount blocks past the end of the file."""
        cluster_size = image.header.cluster_size
        found: list[ReadProblem] = []
        l2_offsets = self._l2_offsets(image)["offsets"]
        refblocks = (
            image.refcount_table.entries & np.uint64(spec.REFT_OFFSET_MASK)
            if image.refcount_table
            else np.empty(0, np.uint64)
        )
        for kind, offsets in (("l2", l2_offsets), ("refblock", arrays.unique(refblocks))):
            outside = offsets[(offsets != 0) & (offsets + np.uint64(cluster_size) > np.uint64(self.size))]
            for offset in outside[:MAX_PROBLEMS_PER_KIND].tolist():
                found.append(
                    self.problem(
                        f"{kind}@{offset:#x}",
                        offset,
                        cluster_size,
                        max(self.size - offset, 0),
                        "an L2 table" if kind == "l2" else "a refcount block",
                    )
                )
            if len(outside) > MAX_PROBLEMS_PER_KIND:
                first = int(outside[MAX_PROBLEMS_PER_KIND])
                found.append(
                    ReadProblem(
                        kind,
                        first,
                        cluster_size,
                        max(first + cluster_size - self.size, 0),
                        f"and {len(outside) - MAX_PROBLEMS_PER_KIND} more {kind} clusters past the end of the file",
                    )
                )
        return found

    def l2_batches(self, image: Image) -> Iterator[L2Tables]:
        """Every distinct L2 table inside the file, in offset order, batched.

        Tables are deduplicated (snapshots share them) and contiguous runs
        are read with one system call.  Entries are decoded to native
        uint64 once, so every rule's predicate runs at full speed.
        """
        header = image.header
        cluster_size = header.cluster_size
        tables = self._l2_offsets(image)
        offsets = tables["offsets"]
        inside = offsets < np.uint64(self.size)
        misaligned = (offsets & np.uint64(cluster_size - 1)) != 0
        keep = inside & ~(misaligned & (np.cumsum(misaligned) > MAX_MISALIGNED_L2_TABLES))
        tables = {name: values[keep] for name, values in tables.items()}
        offsets = tables["offsets"]
        per_batch = max(1, L2_BATCH_BYTES // cluster_size)
        per_window = max(1, WINDOW_BYTES // cluster_size)
        for start in range(0, len(offsets), per_batch):
            if self.planning and start % per_window < per_batch:
                self.plan(cluster_runs(offsets[start : start + per_window], cluster_size), "l2")
            batch = offsets[start : start + per_batch]
            buffer = bytearray(len(batch) * cluster_size)
            view = memoryview(buffer)
            # One read per run of adjacent clusters; what lies past the end of
            # the file stays zero, as QEMU reads it.
            starts = [0, *(np.flatnonzero(np.diff(batch) != np.uint64(cluster_size)) + 1).tolist()]
            for first, end in zip(starts, [*starts[1:], len(batch)]):
                self.read_into(view[first * cluster_size : end * cluster_size], int(batch[first]))
            words = np.frombuffer(buffer, dtype=np.uint64)
            if np.little_endian:
                words.byteswap(inplace=True)
            if header.extended_l2:
                pairs = words.reshape(len(batch), -1, 2)
                entries, bitmaps = pairs[:, :, 0].copy(), pairs[:, :, 1].copy()
            else:
                entries, bitmaps = words.reshape(len(batch), -1), None
            rows = slice(start, start + per_batch)
            yield L2Tables(
                batch,
                entries,
                bitmaps,
                tables["refs"][rows],
                tables["active_refs"][rows],
                tables["first_l1"][rows],
                header.has_data_file,
            )

    def compressed_clusters(self, image: Image, batch: L2Tables, memo: Memo) -> Iterator[CompressedCluster]:
        """One record per distinct compressed payload of a batch (for
        --deep), carrying the entries that name it, in the order of their
        first entry, and the image's ``memo``; within the image's deep budget."""
        deep = self._deep_state()
        flat = np.flatnonzero(batch.entries & np.uint64(spec.OFLAG_COMPRESSED))
        if not len(flat):
            return
        if deep["stopped"]:
            deep["skipped"] += len(flat)
            return
        header = image.header
        offsets, lengths = spec.compressed_ranges(batch.entries.ravel()[flat], header.cluster_bits)
        first, inverse = arrays.unique_pairs(offsets, lengths)
        # The entries of each distinct payload, grouped (entry order kept).
        grouped = flat[np.argsort(inverse, kind="stable")]
        counts = np.bincount(inverse, minlength=len(first))
        ends = np.cumsum(counts)
        order = np.argsort(first)
        kind = header.compression_type or 0
        cluster_size = header.cluster_size
        columns = batch.entries.shape[1]
        if self.planning:
            self.plan(self._deep_ranges(offsets[first[order]], lengths[first[order]], cluster_size), "deep")
        for done, payload in enumerate(order.tolist()):
            start = int(ends[payload - 1]) if payload else 0
            indices = grouped[start : int(ends[payload])]
            offset, length = int(offsets[first[payload]]), int(lengths[first[payload]])
            size = min(length, 2 * cluster_size + spec.SECTOR_SIZE)
            if deep["payloads"] >= MAX_DEEP_PAYLOADS or deep["bytes"] + size + cluster_size > MAX_DEEP_BYTES:
                deep["stopped"] = True
                deep["skipped"] += int(counts[order[done:]].sum())
                return
            deep["payloads"] += 1
            deep["bytes"] += size + cluster_size
            row, column = divmod(int(indices[0]), columns)
            yield CompressedCluster(
                batch.entry_offset(row, column),
                batch.entry_path(row, column),
                offset,
                length,
                self.read(offset, size),
                kind,
                cluster_size,
                memo,
                batch,
                indices,
            )

    def _deep_ranges(self, offsets: np.ndarray, lengths: np.ndarray, cluster_size: int) -> list[tuple[int, int]]:
        """The payloads of a batch that the deep budget lets be read, in order."""
        deep = self._deep_state()
        payloads, spent, ranges = deep["payloads"], deep["bytes"], []
        for offset, length in zip(offsets.tolist(), lengths.tolist()):
            size = min(length, 2 * cluster_size + spec.SECTOR_SIZE)
            if payloads >= MAX_DEEP_PAYLOADS or spent + size + cluster_size > MAX_DEEP_BYTES:
                break
            payloads, spent = payloads + 1, spent + size + cluster_size
            ranges.append((offset, size))
        return ranges

    def _deep_state(self) -> dict[str, Any]:
        """The --deep budget spent so far for this image."""
        state = getattr(self, "_deep", None)
        if state is None:
            state = self._deep = {"payloads": 0, "bytes": 0, "stopped": False, "skipped": 0}
        return state

    def deep_stopped(self) -> DeepStopped | None:
        """Where --deep stopped for its budget, if it did."""
        state = self._deep_state()
        return DeepStopped(state["payloads"], state["skipped"]) if state["stopped"] else None

    def refcount_blocks(self, image: Image) -> Iterator[RefcountBlock]:
        """Every refcount block inside the file, in refcount table order."""
        if image.refcount_table is None or image.header.refcount_order > spec.MAX_REFCOUNT_ORDER:
            return  # refcount widths above 64 bits do not exist
        cluster_size = image.header.cluster_size
        offsets = image.refcount_table.entries & np.uint64(spec.REFT_OFFSET_MASK)
        used = np.flatnonzero(offsets)
        per_window = max(1, WINDOW_BYTES // cluster_size)
        for position, index in enumerate(used.tolist()):
            if self.planning and position % per_window == 0:
                window = offsets[used[position : position + per_window]]
                self.plan(cluster_runs(np.unique(window[window < np.uint64(self.size)]), cluster_size), "refblocks")
            offset = int(offsets[index])
            if offset >= self.size:
                continue
            data = np.frombuffer(bytearray(self.read(offset, cluster_size).ljust(cluster_size, b"\0")), np.uint8)
            yield RefcountBlock(index, offset, image.header.refcount_order, data)


class ImageFile:
    """An open image file: its :class:`~qcow2lint.records.Image` record, and
    the big tables (L2 tables, refcount blocks, compressed payloads) streamed
    on demand while the file is open.

    Use it as a context manager, or call :meth:`close`.  ``image`` stays
    usable after the file is closed; the streams do not.
    """

    def __init__(self, reader: _ImageReader, image: Image) -> None:
        #: Bounded random access to the file.
        self.reader: Reader = reader
        #: Everything read from the file but the big tables.
        self.image = image
        self._streams = reader
        #: What is derived once from the whole image and kept while it is
        #: open (the decoded stored refcounts, what rules concluded about
        #: each distinct ``--deep`` payload).
        self.memo = Memo()

    @property
    def path(self) -> str:
        """The image file's path."""
        return self.image.path

    def l2_batches(self) -> Iterator[L2Tables]:
        """Stream every distinct L2 table referenced by any L1 table."""
        if self.image.readable:
            yield from self._streams.l2_batches(self.image)

    def compressed_clusters(self, batch: L2Tables) -> Iterator[CompressedCluster]:
        """The payloads of the compressed entries of an L2 batch."""
        yield from self._streams.compressed_clusters(self.image, batch, self.memo)

    def deep_stopped(self) -> DeepStopped | None:
        """After the L2 stream: where ``--deep`` stopped for its budget
        (docs/cost-model.md), or None when it judged every payload."""
        return self._streams.deep_stopped()

    def refcount_blocks(self) -> Iterator[RefcountBlock]:
        """Stream every refcount block the refcount table points to."""
        if self.image.readable:
            yield from self._streams.refcount_blocks(self.image)

    def snapshot_l1_tables_at(self, offset: int) -> tuple[L1Table, ...]:
        """The L1 tables of the snapshots a table at ``offset`` (of the
        header's nb_snapshots entries) names, read as the image's own
        snapshot table is (within the same bounds)."""
        if not self.image.readable:
            return ()
        return self._streams._snapshots(evolve(self.image.header, snapshot_offset=offset), [])[1]

    def close(self) -> None:
        """Close the image file; the streams cannot be read afterwards (again is a no-op)."""
        self.reader.close()

    def __enter__(self) -> ImageFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_image(path: str | os.PathLike[str], remote: Mapping[str, Any] | None = None) -> ImageFile:
    """Read an image and keep its file open: the returned :class:`ImageFile`
    holds the ``image`` record and streams the L2 tables and refcount blocks
    until ``close()`` (or the end of a ``with`` block).

    ``path`` may be a URL (``https://``, ``s3://``, any fsspec protocol:
    the ``remote`` extra); ``remote`` then holds ``storage_options`` and
    ``timeout`` (see docs/remote.md).

    Raises ImageError when the file cannot be read at all.
    """
    reader = _ImageReader(open_source(path, remote))
    try:
        return ImageFile(reader, reader.build())
    except OSError as exc:
        reader.close()
        if exc.errno in (errno.EACCES, errno.EIO, errno.EISDIR):
            raise ImageError(f"{reader.path}: {exc.strerror}") from None
        raise
    except BaseException:
        reader.close()
        raise


@contextlib.contextmanager
def open_image(path: str | os.PathLike[str], remote: Mapping[str, Any] | None = None) -> Iterator[ImageFile]:
    """Read an image; the L2 tables and refblocks stream while it is open.

    Raises ImageError when the file cannot be read at all.
    """
    image_file = read_image(path, remote)
    try:
        yield image_file
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EIO, errno.EISDIR):
            raise ImageError(f"{image_file.path}: {exc.strerror}") from None
        raise
    finally:
        image_file.close()
