"""Small helpers for rule plugins: turning vectorised hits into problems.

Rules judge whole tables with numpy predicates and create problems only for
the hits; these helpers keep that cheap even when a corrupt table has
millions of hits, by spelling out only as many as the rule may still report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from qcow2lint import spec
from qcow2lint.findings import Omitted, Problem
from qcow2lint.records import L2Tables


class _Context:  # the part of RuleContext these helpers need
    remaining: int


def each_hit(ctx: _Context, hits: np.ndarray, make: Callable[[int], Problem]) -> Iterator[Problem | Omitted]:
    """``make(i)`` for the hits the rule may still report, then the count of the rest."""
    shown = int(min(len(hits), ctx.remaining))
    for hit in hits[:shown].tolist():
        yield make(hit)
    if len(hits) > shown:
        yield Omitted(len(hits) - shown)


def entry_hits(
    ctx: _Context, table: object, mask: np.ndarray, message: Callable[[int], str], entry_size: int = 8
) -> Iterator[Problem | Omitted]:
    """Problems for the entries of a 1-D table (L1, reftable, bitmap table)
    where ``mask`` is true; ``message`` gets the entry's value."""
    entries = table.entries  # type: ignore[attr-defined]
    base, path = table.file_offset, table.path  # type: ignore[attr-defined]
    yield from each_hit(
        ctx, np.flatnonzero(mask),
        lambda i: Problem(base + i * entry_size, f"{path}[{i}]", message(int(entries[i]))),
    )  # fmt: skip


def l2_hits(
    ctx: _Context, batch: L2Tables, flat: np.ndarray, message: Callable[[int, int], str]
) -> Iterator[Problem | Omitted]:
    """Problems for the L2 entries of a batch at the flat indices ``flat``
    (as from ``np.flatnonzero`` over a whole-batch predicate); ``message``
    gets the entry's value and its subcluster bitmap (0 with standard L2)."""
    columns = batch.entries.shape[1]

    def make(index: int) -> Problem:
        row, column = divmod(index, columns)
        bitmap = int(batch.bitmaps[row, column]) if batch.bitmaps is not None else 0
        return Problem(
            batch.entry_offset(row, column), batch.entry_path(row, column),
            message(int(batch.entries[row, column]), bitmap),
        )  # fmt: skip

    yield from each_hit(ctx, flat, make)


def u64(value: int) -> np.uint64:
    """A mask as a numpy scalar, for predicates over uint64 tables."""
    return np.uint64(value)


def misaligned(offset: int, cluster_size: int) -> bool:
    """Whether a byte offset is not a multiple of the cluster size."""
    return offset % cluster_size != 0


def unknown_feature_bits(ctx: object, field: str, feature_type: int, known_mask: int) -> Iterator[Problem]:
    """A problem for the bits of a v3 feature field outside ``known_mask``,
    named from the image's own feature name table when it has one."""
    header = ctx.header  # type: ignore[attr-defined]
    value = getattr(header, field)
    unknown = value & ~known_mask
    if header.version < 3 or not unknown:
        return
    table = ctx.image.extension(spec.EXT_FEATURE_TABLE)  # type: ignore[attr-defined]
    names = []
    for bit in spec.set_bits(unknown):
        name = table.payload.name_of(feature_type, bit) if table is not None else None
        names.append(f"bit {bit}" + (f" ({name!r})" if name else ""))
    yield Problem(
        header.field_offset(field), f"header.{field}",
        f"{field} {value:#x} has bits QEMU does not know: {', '.join(names)} (known mask {known_mask:#x})",
    )  # fmt: skip


def header_field_misaligned(ctx: object, field: str, what: str) -> Iterator[Problem]:
    """A problem when a header offset field is not cluster-aligned."""
    header = ctx.header  # type: ignore[attr-defined]
    offset = getattr(header, field)
    if misaligned(offset, header.cluster_size):
        yield Problem(
            header.field_offset(field), f"header.{field}",
            f"{what} offset {offset:#x} is not a multiple of the cluster size {header.cluster_size:#x}",
        )  # fmt: skip
