"""Root causes and their consequences: which finding follows from which.

One defect can produce many findings: an L2 table read at a misaligned
offset yields a finding for every garbage entry read from it, and an L1
table QEMU does not read in full leaves every cluster only its missing
entries referenced as a refcount leak.  A rule says which structure its
problem makes unusable (see :class:`qcow2lint.findings.Problem`):

* ``covers``: the bytes QEMU reads as that structure.  A finding located
  inside them is about an entry read from the unusable structure, and a
  refcount leak on one of their clusters exists only because of it;
* ``reads``: how QEMU reads the covered bytes (``l1`` or ``l2`` entries).
  The clusters those misread entries reference (the L2 tables and data of
  a misread L1 table, the data of a misread L2 table) explain the "extra"
  references: refcount-too-low, refcount-zero-used, overlaps;
* ``lost``: entries QEMU should read but does not (an L1 table cut short by
  l1_size, a table QEMU refuses).  The clusters they reference explain the
  "missing" references: refcount leaks.  When a table read from a wrong
  place (``covers``) has nothing at the lost offset, or nothing there that
  leaks, the lost table is looked for among the leaking clusters
  (:meth:`_Tables.leaked_table`);
* ``explains``: clusters whose refcount findings, either way, follow from
  the problem (a range without a refcount block reads as refcount 0);
* ``reads="field"`` with ``covers`` on one field: the field's one wrong
  value breaks several requirements; the other findings at its offset
  follow (:func:`qcow2lint.rulekit.field_root`).

A finding names what it is about in structured fields set by the rule (or
its :mod:`qcow2lint.rulekit` helper): ``clusters`` and ``refs`` for a
refcount finding, ``about`` for the structure it belongs to (an L2 entry's
table, the L2 table an L1 entry names).  A finding about the structure a
root's ``covers`` starts at follows from that root.

:func:`link_consequences` numbers the findings of an image (``id`` 1, 2, ...
in report order) and sets each consequence's ``caused_by`` to the id of
its root cause (chains are followed to the top: a consequence never points
at another consequence).  Only the covered and lost entries are read (by
the reader's table decoder), at most :data:`MAX_TABLE_BYTES` of L2 tables.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import attrs
import numpy as np

from qcow2lint import spec
from qcow2lint.findings import Finding
from qcow2lint.reader import ImageFile
from qcow2lint.recordtype import Record

#: At most this many bytes of L2 tables are read to learn what misread or
#: lost L1 entries reference (a hostile L1 table may name millions).
MAX_TABLE_BYTES = 64 << 20
#: At most this many entries of one covered or lost table are read.
MAX_ENTRIES = 1 << 20
#: At most this many leaking clusters are tried as the place of a table
#: that QEMU looks for past the end of the file.
MAX_LEAK_CANDIDATES = 64
#: Above every cluster index (a byte offset is below 2^64).
MAX_CLUSTER = 1 << 64
#: ``reads`` of a root that covers one field (an entry, a header field):
#: the other findings at the field's offset follow from it.
FIELD = "field"


def number(findings: Sequence[Finding]) -> list[Finding]:
    """The findings with ids 1, 2, ... in their order (no links)."""
    return [attrs.evolve(f, id=index) for index, f in enumerate(findings, 1)]


class _Tables:
    """Reads L1/L2 entries for the linking, within the budget."""

    def __init__(self, image_file: ImageFile) -> None:
        header = image_file.image.header
        self.image_file = image_file
        self.reader = image_file.reader
        self.cluster_bits = header.cluster_bits
        self.cluster_size = header.cluster_size  # checked non-zero by link_consequences
        self.l2_entries = header.cluster_size // spec.L2_ENTRY_SIZE
        self.extended = bool(header.incompatible_features & spec.INCOMPAT_EXTL2)
        if self.extended:
            self.l2_entries //= 2
        self.file_clusters = -(-image_file.image.file_size // self.cluster_size)
        self.budget = MAX_TABLE_BYTES
        #: Offsets of the L2 tables misread L1 entries name (per root).
        self.tables: set[int] = set()

    def entries(self, offset: int, count: int, stride: int = 1) -> np.ndarray:
        """``count`` u64 entries at ``offset``, every ``stride``-th word (an
        extended L2 entry is two words), decoded by the reader as it decodes
        the image's tables; the entries past the end of the file, which QEMU
        reads as zeros, are left out."""
        count = max(0, min(count, MAX_ENTRIES))
        words = self.reader.u64_table(offset, count * stride, "", "", [])
        return words[::stride]

    def clusters(self, offset: int, count: int, kind: str, misread: bool = False) -> set[int]:
        """The clusters inside the file that ``count`` entries of an ``kind``
        table at ``offset`` reference (for L1 entries: the L2 tables and
        their data; for snapshot table entries: their L1 tables and what
        those reference); ``misread``: the entries are what QEMU reads."""
        bits = np.uint64(self.cluster_bits)
        found: set[int] = set()
        if kind == "snapshots":
            # The L1 tables as the reader decodes a snapshot table's: the
            # tables' own clusters, then what their entries reference (each
            # distinct table once, at most MAX_ENTRIES entries in all).
            left, seen = MAX_ENTRIES, set()
            for table in self.image_file.snapshot_l1_tables_at(offset):
                key = (table.file_offset, len(table.entries))
                if key in seen:
                    continue
                seen.add(key)
                entries = table.entries[:left]
                left -= len(entries)
                if len(entries):
                    end = table.file_offset + len(entries) * spec.L1_ENTRY_SIZE - 1
                    found.update(range(table.file_offset >> self.cluster_bits, (end >> self.cluster_bits) + 1))
                found |= self._l1(entries, misread=False)
        elif kind == "l2":
            entries = self.entries(offset, count, 2 if self.extended else 1)
            entries = entries[(entries & np.uint64(spec.OFLAG_COMPRESSED)) == 0]
            hosts = entries & np.uint64(spec.L2E_OFFSET_MASK)
            hosts = hosts[hosts != 0]
            found.update((hosts >> bits).tolist())
            found.update(((hosts + np.uint64(self.cluster_size - 1)) >> bits).tolist())
        elif kind == "l1":
            found = self._l1(self.entries(offset, count), misread)
        elif kind == "bitmap-table":
            found = self._bitmap_data(self.entries(offset, count))
        elif kind == "bitmaps":
            found = self._bitmaps(offset, count)
        return {c for c in found if c < self.file_clusters}

    def leaked_table(self, count: int, kind: str, leaks: list[tuple[int, int]], own: set[int]) -> set[int]:
        """The clusters of the tables of ``kind`` (``count`` entries) that lie
        among the leaking clusters ``leaks`` (sorted runs) and reference only
        leaking clusters (or the root's ``own``), and what they reference:
        where a table QEMU looks for in the wrong place most likely is.  At most
        MAX_LEAK_CANDIDATES clusters are tried, each charged a cluster of
        the budget of table reads."""
        found: set[int] = set()
        tried = 0
        for first, last in leaks:
            for cluster in range(first, min(last, first + MAX_LEAK_CANDIDATES - tried - 1, self.file_clusters - 1) + 1):
                tried += 1
                if self.budget < self.cluster_size:  # shared with the L2 tables read for the roots
                    return found
                self.budget -= self.cluster_size
                named = self.clusters(cluster << self.cluster_bits, count, kind) - {cluster}
                if named and all(c in own or _leaks(leaks, c) for c in named):
                    found |= named | {cluster}
            if tried >= MAX_LEAK_CANDIDATES:
                break
        return found

    def _bitmap_data(self, entries: np.ndarray) -> set[int]:
        """The data clusters bitmap table ``entries`` name (an entry with
        offset 0 names none, whatever its all-ones flag)."""
        hosts = entries & np.uint64(spec.BME_TABLE_ENTRY_OFFSET_MASK)
        return set((hosts[hosts != 0] >> np.uint64(self.cluster_bits)).tolist())

    def _bitmaps(self, offset: int, count: int) -> set[int]:
        """The clusters of the bitmap tables the first ``count`` entries of a
        bitmap directory at ``offset`` name, and their data clusters (each
        distinct table once, at most MAX_ENTRIES table entries in all)."""
        found: set[int] = set()
        left, seen = MAX_ENTRIES, set()
        entries = self.reader.bitmap_entries(offset)
        for _ in range(min(count, spec.MAX_BITMAPS)):
            entry, complete = next(entries, (None, False))
            if entry is None or not left:
                break
            table, size = entry.bitmap_table_offset, min(entry.bitmap_table_size, left)
            if table and size and (table, size) not in seen:
                seen.add((table, size))
                left -= size
                end = table + size * spec.BITMAP_TABLE_ENTRY_SIZE - 1
                found.update(range(table >> self.cluster_bits, (end >> self.cluster_bits) + 1))
                found |= self._bitmap_data(self.entries(table, size))
            if not complete:
                break
        return found

    def _l1(self, entries: np.ndarray, misread: bool) -> set[int]:
        """The L2 tables L1 ``entries`` name and the clusters those
        reference (within the budget); the tables are remembered."""
        found: set[int] = set()
        tables = entries & np.uint64(spec.L1E_OFFSET_MASK)
        # QEMU walks every non-zero entry it reads: one with flag or reserved
        # bits and a zero offset makes it read cluster 0 as an L2 table.  An
        # entry it should read (lost) references nothing with offset 0.
        for table in tables[(entries if misread else tables) != 0].tolist():
            self.tables.add(table)
            found.update({table >> self.cluster_bits, (table + self.cluster_size - 1) >> self.cluster_bits})
            if self.budget >= self.cluster_size and table < self.reader.size:
                self.budget -= self.cluster_size
                found |= self.clusters(table, self.l2_entries, "l2")
        return found


@attrs.frozen(repr=False)
class _Root(Record):
    index: int
    covers: tuple[int, int] | None
    #: Clusters whose leaks follow from the root (its own and the lost
    #: ones'), sorted.
    missing: np.ndarray
    #: Clusters whose extra references follow from the root, sorted.
    extra: np.ndarray
    #: L2 tables only misread L1 entries name: findings about their entries
    #: follow from the root.
    tables: frozenset[int] = frozenset()
    #: Clusters whose refcount findings follow from the root (either way).
    explains: tuple[int, int] | None = None
    #: Whether the covered bytes start inside the file: only then can a
    #: finding be located in them (a table past the end of the file has no
    #: entries to read; the file's end is no entry of it).
    located: bool = True


def _root(index: int, finding: Finding, tables: _Tables, legit: set[int], leaks: list[tuple[int, int]]) -> _Root:
    missing: set[int] = set()
    extra: set[int] = set()
    misread: frozenset[int] = frozenset()
    own: set[int] = set()  # the covered clusters: their leaks and extra references
    covers = finding.covers
    if covers is not None and covers[1] > covers[0]:
        first, last = covers[0] >> tables.cluster_bits, (covers[1] - 1) >> tables.cluster_bits
        own.update(
            range(first, min(last, tables.file_clusters - 1, first + (MAX_TABLE_BYTES >> tables.cluster_bits)) + 1)
        )
        if finding.reads:
            size = spec.L2_ENTRY_SIZE * (2 if finding.reads == "l2" and tables.extended else 1)
            tables.tables = set()
            extra = tables.clusters(covers[0], (covers[1] - covers[0]) // size, finding.reads, misread=True)
            misread = frozenset(tables.tables - legit)
    if finding.lost is not None:
        offset, count, kind = finding.lost
        lost = tables.clusters(offset, count, kind) if offset < tables.reader.size else set()
        if covers is not None and not any(_leaks(leaks, cluster) for cluster in lost):
            # a table read from a wrong place, and nothing at the place guessed
            # for the real one, or nothing it names leaks: the table it should
            # be is one that leaks
            lost |= tables.leaked_table(count, kind, leaks, own)
        missing |= lost
    located = covers is not None and covers[0] < tables.reader.size
    return _Root(
        index, covers, _sorted(own | missing), _sorted(own | (extra - missing)), misread, finding.explains, located
    )


def _leaks(leaks: list[tuple[int, int]], cluster: int) -> bool:
    """Whether ``cluster`` lies in one of the sorted runs ``leaks``."""
    at = bisect.bisect_right(leaks, (cluster, MAX_CLUSTER)) - 1
    return at >= 0 and leaks[at][0] <= cluster <= leaks[at][1]


def _sorted(clusters: set[int]) -> np.ndarray:
    return np.array(sorted(clusters), np.int64)


def _follows(finding: Finding, root: _Root) -> bool:
    """Whether ``finding`` is a consequence of ``root``."""
    about = finding.about
    if root.covers is not None:
        if root.located and root.covers[0] <= finding.offset < root.covers[1] and finding.refs is None:
            return True  # an entry read from the unusable structure
        if about is not None and about == root.covers[0] and root.covers[1] > root.covers[0]:
            return True  # about the unusable structure itself
    if about is not None and about in root.tables:
        return True
    if finding.clusters is None:
        return False
    first, last = finding.clusters
    if root.explains is not None and first <= root.explains[1] and root.explains[0] <= last:
        return True
    if finding.refs is None:
        return False
    wanted = root.missing if finding.refs == "missing" else root.extra
    # some wanted cluster lies in [first, last]
    at = int(np.searchsorted(wanted, first))
    return at < len(wanted) and int(wanted[at]) <= last


def link_consequences(findings: Sequence[Finding], image_file: ImageFile) -> list[Finding]:
    """Number ``findings`` (in order) and link every consequence to its root
    cause (see the module docstring)."""
    numbered = number(findings)
    candidates = []
    #: The first field root at each offset (rulekit.field_root).
    fields: dict[int, int] = {}
    for i, f in enumerate(numbered):
        if f.reads == FIELD and f.covers is not None:
            fields.setdefault(f.covers[0], i)
        elif f.covers is not None or f.lost is not None or f.explains is not None:
            candidates.append(i)
    roots: list[_Root] = []
    # With cluster_bits of 64 or more there are no clusters to link through
    # (and 1 << cluster_bits would be a number of gigabytes).
    if candidates and image_file.image.header.cluster_size:
        tables = _Tables(image_file)
        covered = [f.covers for f in (numbered[i] for i in candidates) if f.covers is not None]
        legit = _named_l2_tables(image_file, covered)
        # the runs of clusters that leak, as the refcount findings say
        leaks = sorted(f.clusters for f in numbered if f.refs == "missing" and f.clusters is not None)
        roots = [_root(i, numbered[i], tables, legit, leaks) for i in candidates]
    if not roots and not fields:
        return numbered
    parent: dict[int, int] = {}
    last_listed: dict[str, int] = {}
    for index, finding in enumerate(numbered):
        if finding.omitted:
            # "and N more": like the last finding its rule listed
            listed = last_listed.get(finding.rule)
            if listed is not None and listed in parent:
                parent[index] = parent[listed]
            continue
        last_listed[finding.rule] = index
        for root in roots:
            if root.index != index and _follows(finding, root) and not _reaches(parent, root.index, index):
                parent[index] = root.index
                break
        else:  # another finding about a field whose one wrong value a field root reports
            field = fields.get(finding.offset)
            if field is not None and field != index and not _reaches(parent, field, index):
                parent[index] = field
    linked = []
    for index, finding in enumerate(numbered):
        top = index
        while top in parent:  # acyclic: _reaches refused every cycle
            top = parent[top]
        linked.append(finding if top == index else attrs.evolve(finding, caused_by=numbered[top].id))
    return linked


def _named_l2_tables(image_file: ImageFile, covered: list[tuple[int, int]]) -> set[int]:
    """Offsets of the L2 tables that L1 entries outside every covered range
    name: findings about their entries are their own."""
    named: set[int] = set()
    for table in image_file.image.l1_tables():
        entries = table.entries & np.uint64(spec.L1E_OFFSET_MASK)
        where = table.file_offset + spec.L1_ENTRY_SIZE * np.arange(len(entries), dtype=np.int64)
        keep = table.entries != 0  # a zero offset with flags names cluster 0
        for start, end in covered:
            keep &= (where < start) | (where >= end)
        named.update(entries[keep].tolist())
    return named


def _reaches(parent: dict[int, int], start: int, target: int) -> bool:
    """Whether following ``parent`` links from ``start`` reaches ``target``."""
    while start != target:
        if start not in parent:
            return False
        start = parent[start]
    return True
