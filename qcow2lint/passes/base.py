"""The pass protocol: whole-image analyses the engine feeds with the L2 tables.

A pass is started once per image, gets every L2 batch after the rules have
judged it, and finishes with one record.  The engine hands that record to
the rules whose scope is the record's type (and, for a pass with
``statistics``, merges ``record.stats`` into qemu-img check's figures).  A
pass that raises is reported as an internal error and its rules are skipped;
the other rules still run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from qcow2lint.reader import ImageFile
    from qcow2lint.records import L2Tables

#: Beyond this many clusters (a sparse file of petabytes) the refcount
#: arrays would not fit in memory: the analysis is skipped and says so.
MAX_CLUSTERS = 1 << 28
#: Events kept in full for findings (the counts are always exact).
MAX_EVENTS = 1000


class Pass(Protocol):
    """A registered whole-image pass (see :data:`qcow2lint.passes.PASSES`)."""

    #: The type of the record ``finish`` returns: rules of this scope get it.
    record: ClassVar[type]
    #: Whether the record carries qemu-img check's figures in ``stats``: the
    #: pass then also runs when statistics are asked for.
    statistics: ClassVar[bool]
    #: How the internal-error finding names the pass, and what it skips.
    title: ClassVar[str]
    skips: ClassVar[str]

    def start(self, image_file: ImageFile) -> bool:
        """Prepare for one image; False when there is nothing to do for it
        (then neither ``add`` nor ``finish`` is called)."""
        ...

    def add(self, batch: L2Tables) -> None:
        """Take one batch of L2 tables."""
        ...

    def finish(self) -> object:
        """The pass's record for the image."""
        ...
