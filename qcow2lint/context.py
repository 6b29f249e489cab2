"""What a rule sees besides its record: the typed rule context.

Rule plugins annotate their ``check(record, ctx)`` with :class:`RuleContext`;
the engine passes an object that follows it.  Importing this module is
cheap (no numpy, no reader)::

    from qcow2lint.context import RuleContext

    def check(table: L1Table, ctx: RuleContext) -> Iterator[Problem]:
        ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from qcow2lint.records import Header, Image
    from qcow2lint.results import StoredRefcounts

__all__ = ["NotRead", "RuleContext"]


class NotRead(Exception):
    """Raised when a rule asks for a structure the reader did not read.

    The reader follows no pointer of a header it cannot trust (bad magic,
    unknown version, cluster_bits out of range, a file shorter than the
    header): the extensions, tables, snapshots and bitmaps of such an
    image are unknown, not empty, and so is its cluster size.  The engine
    gives such an image's rules a view of it that raises this error for
    everything but the header, the file's path and size and the reader's
    problems, and skips, without a finding, the rule that asked: a rule
    never judges "none" where the truth is "not read".
    """


class RuleContext(Protocol):
    """Read-only facts about the image being checked, and the rule's options."""

    @property
    def image(self) -> Image:
        """The whole image (for cross-structure facts).  Of an image whose
        header cannot be followed, only ``path``, ``file_size``, ``header``,
        ``readable`` and ``problems`` are known; anything else raises
        :class:`NotRead` (and the engine skips the rule)."""
        ...

    @property
    def header(self) -> Header:
        """The image header."""
        ...

    @property
    def cluster_size(self) -> int:
        """Bytes per cluster (:class:`NotRead` when the header cannot be
        followed: its cluster_bits may be out of range)."""
        ...

    @property
    def file_size(self) -> int:
        """Size of the image file in bytes."""
        ...

    @property
    def options(self) -> Mapping[str, Any]:
        """The rule's options, defaults overlaid with the configuration."""
        ...

    @property
    def remaining(self) -> int:
        """How many more findings this rule may report for this image."""
        ...

    @property
    def stored_refcounts(self) -> StoredRefcounts | None:
        """The refcounts stored on disk, decoded once per image (None when the
        image is too large to analyse)."""
        ...
