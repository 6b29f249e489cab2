"""``Memo``: values derived once and kept exactly as long as their owner.

Every derived value that several rules or passes ask for is computed once
and kept in the :class:`Memo` of the object that owns it, so that it lives
and dies with that object:

* an L2 batch (:class:`qcow2lint.records.L2Tables`) keeps its predicates'
  results and summaries; the batch is dropped after the rules and passes
  have judged it, and its memo with it (a 1 TiB image streams 128 batches
  through bounded memory, docs/cost-model.md);
* a snapshot table (:class:`qcow2lint.records.SnapshotTable`) keeps what the
  per-entry rules ask of the whole table;
* an open image file (:class:`qcow2lint.reader.ImageFile`) keeps what is
  derived from the whole image: the decoded stored refcounts, and what a
  rule concluded about each distinct ``--deep`` payload.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import attrs

T = TypeVar("T")

_MISSING: Any = object()


class Memo:
    """The values computed so far for one owner, by key."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}

    def once(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for, the same value
        afterwards.  A computation that raises is not remembered."""
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            value = self._values[key] = compute()
        return value


def memo_field() -> Any:
    """An attrs field for a record's own :class:`Memo`: made with the
    record, never compared, copied or shown."""
    return attrs.field(factory=Memo, init=False, eq=False, repr=False)
