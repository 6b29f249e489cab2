"""One memo for derived values, kept exactly as long as the object that owns it."""

from __future__ import annotations

import gc
import weakref

import attrs
import numpy as np
import pytest

from qcow2lint import predicates, spec
from qcow2lint.memo import Memo
from qcow2lint.records import L2Tables, SnapshotEntry, SnapshotTable
from qcow2lint.rulekit import blank_snapshot_tail


def test_a_value_is_computed_once_and_a_failure_is_not_remembered() -> None:
    memo, calls = Memo(), []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    assert memo.once("a", compute) == 1 and memo.once("a", compute) == 1
    assert memo.once(("b", 1), compute) == 2 and len(calls) == 2
    assert memo.once("none", lambda: None) is None and memo.once("none", compute) is None

    def fail() -> int:
        raise ValueError("no")

    with pytest.raises(ValueError):
        memo.once("c", fail)
    assert memo.once("c", compute) == 3


def _batch(entries: list[int]) -> L2Tables:
    return L2Tables(np.array([0x50000], np.uint64), np.array([entries], np.uint64))


def test_a_batch_keeps_its_predicates_and_drops_them_with_itself() -> None:
    batch = _batch([0x60000 | spec.OFLAG_COPIED, 0, 0x70000])
    first = predicates.allocated(batch)
    assert first.ravel().tolist() == [True, False, True]
    assert predicates.allocated(batch) is first  # computed once per batch
    other = _batch([0, 0x60000, 0])
    assert predicates.allocated(other).ravel().tolist() == [False, True, False]  # its own memo
    gone = weakref.ref(first)
    del batch, first
    gc.collect()
    assert gone() is None  # nothing outside the batch kept its result


def test_a_copied_record_starts_with_an_empty_memo() -> None:
    batch = _batch([0x60000, 0, 0])
    assert predicates.allocated(batch).ravel().tolist() == [True, False, False]
    changed = attrs.evolve(batch, entries=np.array([[0, 0, 0x70000]], np.uint64))
    assert predicates.allocated(changed).ravel().tolist() == [False, False, True]
    assert changed == changed and batch.memo is not changed.memo


def _entry(index: int, l1_offset: int, id_str: bytes) -> SnapshotEntry:
    return SnapshotEntry(
        index,
        0x30000 + 64 * index,
        l1_offset,
        1 if l1_offset else 0,
        len(id_str),
        0,
        0,
        0,
        0,
        0,
        0,
        b"",
        id_str,
        b"",
        b"",
    )


def test_the_blank_tail_is_measured_per_table() -> None:
    real, blank = _entry(0, 0x40000, b"1"), _entry(1, 0, b"")
    two = SnapshotTable(0x30000, 2, (real, blank))
    one = SnapshotTable(0x30000, 1, (real,))
    assert [blank_snapshot_tail(t) for t in (two, one, two, one)] == [1, 1, 1, 1]
    all_blank = SnapshotTable(0x30000, 2, (_entry(0, 0, b""), _entry(1, 0, b"")))
    assert blank_snapshot_tail(all_blank) == 0 and blank_snapshot_tail(two) == 1
