"""Test-side builders for the encryption, placement and snapshot rule tests.

Like :mod:`imagebuilder`, the builders never use ``qcow2lint``: they rewrite
whole structures that the one-field setters of :class:`imagebuilder.Qcow2Image`
cannot change in place (an extension area without one extension, a snapshot
table entry with a different amount of extra data, id or name), and build
the few extra clean images these tests need. Layouts follow
``shared/qcow2-rules.md`` §1.2 and §1.8. The last part holds the
table-driven machinery (rows, targets, the four per-row assertions) that
test_rules_placement.py and test_rules_snapshots.py share; only that part
runs the ``qcow2lint`` CLI, through conftest's helpers.
"""

from __future__ import annotations

import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import imagebuilder as ib
from baseimages import BASES
from conftest import ImageCache, format_findings, lint_json, rules_fired, write_config

KIB = 1024
MIB = 1 << 20
CLUSTER = 64 * KIB

SNAPSHOT_HEADER = struct.Struct(">QIHHIIQII")  # §1.8 bytes 0..39
LUKS_SLOTS_OFFSET = 208  # §1.10: 8 key slots of 48 bytes from here
LUKS_SLOT_SIZE = 48


def _round_up(value: int, align: int) -> int:
    return (value + align - 1) // align * align


def beyond_eof(img: ib.Qcow2Image, clusters: int = 4) -> int:
    """A cluster-aligned offset ``clusters`` clusters past the end of the file."""
    return _round_up(img.file_size, img.cluster_size) + clusters * img.cluster_size


# --------------------------------------------------------------------------
# Header extensions
# --------------------------------------------------------------------------


def rewrite_extensions(img: ib.Qcow2Image, extensions: list[tuple[int, bytes]]) -> list[int]:
    """Rewrite the extension area from header_length: ``(type, data)`` pairs,
    each padded to 8, then an end marker; the old area is zero-filled.

    Returns the offset of each extension's framing.
    """
    start = img.header_length
    old_end = start
    for ext in img.extensions:
        old_end = ext.offset + 8 + _round_up(ext.length, 8)
    body, offsets = b"", []
    for ext_type, data in extensions:
        offsets.append(start + len(body))
        body += struct.pack(">II", ext_type, len(data)) + data + bytes(_round_up(len(data), 8) - len(data))
    body += bytes(8)
    img.write_bytes(start, body.ljust(old_end + 8 - start, b"\0"))
    img.reload()
    return offsets


def extension_list(img: ib.Qcow2Image) -> list[tuple[int, bytes]]:
    """The image's extensions as ``(type, data)`` pairs, for :func:`rewrite_extensions`."""
    return [(ext.type, ext.data) for ext in img.extensions]


def luks_area(img: ib.Qcow2Image) -> tuple[int, int]:
    """``(offset, length)`` from the full disk encryption header pointer."""
    ext = img.extension(ib.EXT_CRYPTO)
    return struct.unpack(">QQ", ext.data[:16])


def luks_slot_offset(img: ib.Qcow2Image, slot: int) -> int:
    """Absolute offset of LUKS key slot ``slot`` (its ``active`` word)."""
    return luks_area(img)[0] + LUKS_SLOTS_OFFSET + slot * LUKS_SLOT_SIZE


# --------------------------------------------------------------------------
# Snapshot table
# --------------------------------------------------------------------------


@dataclass
class RawSnapshot:
    """One snapshot table entry, raw enough to rewrite with other sizes."""

    l1_table_offset: int
    l1_size: int
    date_sec: int = 0
    date_nsec: int = 0
    vm_clock_nsec: int = 0
    vm_state_size32: int = 0
    extra: bytes = b""
    id_str: bytes = b""
    name: bytes = b""
    #: when set, written as extra_data_size instead of len(extra)
    extra_data_size: int | None = None
    offset: int = field(default=0, compare=False)

    def encode(self) -> bytes:
        """The entry's bytes, padded to a multiple of 8."""
        extra_size = len(self.extra) if self.extra_data_size is None else self.extra_data_size
        head = SNAPSHOT_HEADER.pack(
            self.l1_table_offset, self.l1_size, len(self.id_str), len(self.name),
            self.date_sec, self.date_nsec, self.vm_clock_nsec, self.vm_state_size32, extra_size,
        )  # fmt: skip
        raw = head + self.extra + self.id_str + self.name
        return raw + bytes(_round_up(len(raw), 8) - len(raw))

    @property
    def id_offset(self) -> int:
        """Absolute offset of the id string (after :func:`rewrite_snapshot_table`)."""
        return self.offset + ib.SNAPSHOT_FIXED + len(self.extra)


def read_snapshots(img: ib.Qcow2Image) -> list[RawSnapshot]:
    """The snapshot table entries as :class:`RawSnapshot` records."""
    result = []
    for snap in img.snapshots:
        f = snap.fields
        extra = img.read_bytes(snap.offset + ib.SNAPSHOT_FIXED, f["extra_data_size"])
        result.append(
            RawSnapshot(
                f["l1_table_offset"], f["l1_size"], f["date_sec"], f["date_nsec"], f["vm_clock_nsec"],
                f["vm_state_size"], extra, snap.id_str, snap.name, offset=snap.offset,
            )
        )  # fmt: skip
    return result


def rewrite_snapshot_table(img: ib.Qcow2Image, entries: list[RawSnapshot]) -> list[RawSnapshot]:
    """Write ``entries`` at snapshots_offset, one after another (8-aligned),
    zero-fill the rest of the old table and set nb_snapshots.

    The table must still fit in the clusters QEMU allocated for it (a small
    table sits alone in its cluster). Returns the entries with their offsets.
    """
    start = img.header["snapshots_offset"]
    old_end = start + sum(s.size for s in img.snapshots)
    body, placed = b"", []
    for entry in entries:
        placed.append(replace(entry, offset=start + len(body)))
        body += entry.encode()
    assert _round_up(start + len(body), img.cluster_size) <= _round_up(old_end, img.cluster_size), "table grew"
    img.write_bytes(start, body + bytes(max(old_end - start - len(body), 0)))
    img.set_header("nb_snapshots", len(entries))
    img.reload()
    return placed


def extra_data(vm_state_size: int = 0, disk_size: int = 0, icount: int | None = None) -> bytes:
    """Snapshot extra data (§1.8): vm_state_size, disk_size[, icount]."""
    data = struct.pack(">QQ", vm_state_size, disk_size)
    return data if icount is None else data + struct.pack(">q", icount)


# --------------------------------------------------------------------------
# Extra clean images (built once per session by the test modules)
# --------------------------------------------------------------------------


def _snap_small(path: Path) -> None:
    """v3, 16 MiB, data, one snapshot taken last: the snapshot table is the
    last thing in the file, which ends right after the entry's name."""
    ib.create(path, 16 * MIB, {"cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.snapshot_create(path, "snap1")


def _snap_two(path: Path) -> None:
    """v3, 16 MiB, two snapshots (ids 1 and 2)."""
    _snap_small(path)
    ib.write(path, CLUSTER, CLUSTER, 0x11)
    ib.snapshot_create(path, "snap2")


def _v2_snapshot(path: Path) -> None:
    """v2 (compat=0.10), 16 MiB, data, one snapshot."""
    ib.create(path, 16 * MIB, {"compat": "0.10", "cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.snapshot_create(path, "old")


def _snap_resized(path: Path) -> None:
    """v3 snapshot, then the disk grown by 1 MiB: disk sizes differ, legally."""
    _snap_small(path)
    ib.run_tool([ib.QEMU_IMG, "resize", "-q", path, "+1M"])


def _snap_empty_disk(path: Path) -> None:
    """A 0-byte v3 disk with a snapshot: QEMU writes l1_size 0 and L1 offset 0."""
    ib.create(path, 0)
    ib.snapshot_create(path, "empty")


def _shrunk(path: Path) -> None:
    """A 3 GiB disk shrunk to 1 GiB: the L1 table keeps its 6 entries."""
    ib.create(path, 3 << 30, {"cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    ib.run_tool([ib.QEMU_IMG, "resize", "-q", "--shrink", path, "1G"])


RECIPES: dict[str, Callable[[Path], None]] = {
    "snap-small": _snap_small,
    "snap-two": _snap_two,
    "v2-snapshot": _v2_snapshot,
    "snap-resized": _snap_resized,
    "snap-empty-disk": _snap_empty_disk,
    "shrunk": _shrunk,
}


class ExtraImages:
    """Builds each of :data:`RECIPES` once, on first use, and hands out copies."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, name: str) -> Path:
        """The shared, never modified image ``name``."""
        path = self.root / f"{name}.qcow2"
        if not path.exists():
            tmp = self.root / f"{name}.partial.qcow2"
            RECIPES[name](tmp)
            tmp.rename(path)
        return path

    def copy(self, name: str, directory: Path) -> Path:
        """A private writable copy of ``name`` in ``directory``."""
        dst = directory / f"{name}.qcow2"
        shutil.copyfile(self.path(name), dst)
        return dst


# --------------------------------------------------------------------------
# Table-driven cases (the shape of tests/test_rules.py)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where a patch wrote: acceptable finding offsets and a location regex."""

    offsets: tuple[int, ...]
    location: str  # regular expression, matched with re.fullmatch


@dataclass(frozen=True)
class QemuExpect:
    """What QEMU says about the patched image: ``tool`` is ``check``
    (`qemu-img check`), ``info`` (`qemu-img info`, which only opens the image)
    or ``resize`` (`qemu-img resize IMG +1M`)."""

    tool: str
    returncode: int
    message: str | None = None  # substring of stdout+stderr


@dataclass(frozen=True)
class Row:
    """One rule test case: a base image, a patch, what QEMU says."""

    rule: str
    severity: str
    base: str
    patch: Callable[[ib.Qcow2Image], Target]
    qemu: QemuExpect
    variant: str = ""
    #: the base that must not fire the rule, when ``base`` fires it as it is
    #: (rows whose "defect" is a legal property of a real image)
    clean_base: str = ""

    @property
    def quiet_base(self) -> str:
        """The base the quiet-on-clean-base test lints."""
        return self.clean_base or self.base

    @property
    def id(self) -> str:
        """pytest id."""
        return f"{self.rule}[{self.variant}]" if self.variant else self.rule


def first_row_per_rule(rows: list[Row]) -> list[Row]:
    """The first row of every rule, for the quiet-on-base and disabled tests."""
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row.rule, row)
    return list(first.values())


def run_qemu(expect: QemuExpect, path: Path, access: ib.Access) -> ib.CheckResult:
    """Run the QEMU tool a row names on ``path``."""
    if expect.tool == "check":
        return ib.qemu_check(path, access=access)
    if expect.tool == "info":
        argv = [ib.QEMU_IMG, "info", "-U", "-f", "qcow2", path]
    elif expect.tool == "resize":
        argv = [ib.QEMU_IMG, "resize", "-f", "qcow2", path, "+1M"]
    else:
        raise ValueError(f"unknown QEMU tool {expect.tool!r}")
    proc = ib.run_tool(argv, check=False)
    return ib.CheckResult(proc.returncode, proc.stdout, proc.stderr)


class Bases:
    """The shared bases of baseimages.py and the extra images above, by name."""

    def __init__(self, shared: ImageCache, extra: ExtraImages) -> None:
        self.shared = shared
        self.extra = extra

    def access(self, name: str) -> ib.Access:
        """How QEMU tools must open base ``name``."""
        return BASES[name].access if name in BASES else ib.PLAIN

    def path(self, name: str) -> Path:
        """The unmodified base ``name``."""
        return self.shared.path(name) if name in BASES else self.extra.path(name)

    def copy(self, name: str, directory: Path) -> Path:
        """A private writable copy of base ``name``."""
        return self.shared.copy(name, directory) if name in BASES else self.extra.copy(name, directory)

    def report(self, name: str) -> dict:
        """The JSON lint report of the unmodified base."""
        return self.shared.report(name) if name in BASES else lint_json(self.extra.path(name))

    def apply(self, row: Row, directory: Path) -> tuple[Path, Target]:
        """A copy of the row's base with the row's patch applied."""
        path = self.copy(row.base, directory)
        return path, row.patch(ib.Qcow2Image(path))


def assert_points_at(finding: dict, target: Target) -> None:
    """The finding's offset is one of the patched offsets and its location matches."""
    assert finding["offset"] in target.offsets, (
        f"offset {finding['offset']:#x} not in {[hex(o) for o in target.offsets]}: {finding}"
    )
    assert re.fullmatch(target.location, finding["location"]), (
        f"location {finding['location']!r} does not match /{target.location}/: {finding}"
    )


def assert_row_fires_once(row: Row, bases: Bases, directory: Path) -> None:
    """(a) The row's defect is reported once, with its severity, at the patched field."""
    path, target = bases.apply(row, directory)
    report = lint_json(path, "--preset", "pedantic")  # rules off by default too
    found = report["images"][0]["findings"]
    hits = rules_fired(report).get(row.rule, [])
    assert len(hits) == 1, f"{row.rule} fired {len(hits)} times:\n{format_findings(found)}"
    assert hits[0]["severity"] == row.severity, hits[0]
    assert_points_at(hits[0], target)
    assert report["_returncode"] == (1 if any(f["severity"] == "error" for f in found) else 0)


def assert_qemu_agrees(row: Row, bases: Bases, directory: Path) -> None:
    """The recipe really makes the defect: QEMU reacts as the catalogue says."""
    path, _ = bases.apply(row, directory)
    result = run_qemu(row.qemu, path, bases.access(row.base))
    assert result.returncode == row.qemu.returncode, result.output
    if row.qemu.message is not None:
        assert row.qemu.message in result.output, result.output


def assert_quiet_on_clean_base(row: Row, bases: Bases) -> None:
    """(b) The unpatched base does not fire the rule."""
    fired = rules_fired(bases.report(row.quiet_base))
    assert row.rule not in fired, format_findings(fired[row.rule])
    if not _default_enabled(row.rule):  # quiet where it runs, not only where it is off
        fired = rules_fired(lint_json(bases.path(row.quiet_base), "--preset", "pedantic"))
        assert row.rule not in fired, format_findings(fired[row.rule])


def _default_enabled(rule: str) -> bool:
    from qcow2lint.registry import load_registry

    found = load_registry().get(rule)
    return found is None or found.default_enabled


def assert_disabled_in_config(row: Row, bases: Bases, directory: Path) -> None:
    """(c) ``rules: {NAME: disable}`` silences the rule on the patched image."""
    path, _ = bases.apply(row, directory)
    config = write_config(directory, f"rules:\n  {row.rule}: disable\n")
    fired = rules_fired(lint_json(path, "--config", str(config)))
    assert row.rule not in fired, format_findings(fired[row.rule])
