"""Whole-image passes: analyses fed with every L2 batch, one record each.

The engine runs every pass of :data:`PASSES` that a rule or the statistics
need, generically (see :class:`qcow2lint.passes.base.Pass`).  The refcount
analysis is one pass split into modules by job: :mod:`.stored` (the stored
refcounts), :mod:`.refcounts` (the rebuilt refcounts, and the pass itself)
and :mod:`.extents` (the typed extent map and its overlaps).
"""

from __future__ import annotations

from qcow2lint.passes.base import Pass
from qcow2lint.passes.refcounts import RefcountPass

#: Every registered pass: a class whose instances follow :class:`Pass`.
PASSES: tuple[type[Pass], ...] = (RefcountPass,)

__all__ = ["PASSES", "Pass", "RefcountPass"]
