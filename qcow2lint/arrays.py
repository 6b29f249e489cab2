"""Set operations on 1-D integer arrays, by sorting.

numpy 2's ``np.unique`` (and ``np.setdiff1d`` and ``np.intersect1d``,
which call it) imports ``numpy.ma`` on first use: 7-13 ms, a tenth of a
small image's whole check.  These give the same results for the 1-D
integer arrays the reader and the analysis use, with a sort and a
comparison.
"""

from __future__ import annotations

import numpy as np


def unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (``np.unique(values)``)."""
    return unique_inverse(values)[0]


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, ascending, and for each value its index among
    them (``np.unique(values, return_inverse=True)``)."""
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(values), np.intp)
    inverse[order] = np.cumsum(first) - 1
    return ordered[first], inverse


def counts(values: np.ndarray) -> np.ndarray:
    """How often each distinct value occurs, in ascending order of the
    values (``np.unique(values, return_counts=True)[1]``)."""
    values = np.sort(np.asarray(values).ravel())
    first = np.ones(len(values), bool)
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return np.diff(np.append(np.flatnonzero(first), len(values)))


def unique_pairs(first: np.ndarray, second: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct pairs ``(first[i], second[i])``, ordered by ``first``
    then ``second``: where each occurs first, and for each pair its index
    among them (``np.unique`` of the stacked pairs with ``axis=0``,
    ``return_index`` and ``return_inverse``, but the distinct pairs)."""
    order = np.lexsort((second, first))  # stable: each group starts at its first occurrence
    ordered_first, ordered_second = first[order], second[order]
    starts = np.ones(len(order), bool)
    starts[1:] = (ordered_first[1:] != ordered_first[:-1]) | (ordered_second[1:] != ordered_second[:-1])
    inverse = np.empty(len(order), np.intp)
    inverse[order] = np.cumsum(starts) - 1
    return order[starts], inverse


def _split(values: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values, ascending, and whether each is among ``others``."""
    distinct, among = unique(values), unique(others)
    position = np.searchsorted(among, distinct)
    found = position < len(among)
    found[found] = among[position[found]] == distinct[found]
    return distinct, found


def setdiff(values: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The distinct values not in ``removed``, ascending (``np.setdiff1d``)."""
    distinct, found = _split(values, removed)
    return distinct[~found]


def intersect(values: np.ndarray, others: np.ndarray) -> np.ndarray:
    """The distinct values also in ``others``, ascending (``np.intersect1d``)."""
    distinct, found = _split(values, others)
    return distinct[found]
