"""Set operations on 1-D integer arrays, by sorting.

numpy 2's ``np.unique`` (and ``np.setdiff1d``, which calls it) imports
``numpy.ma`` on first use: 7-13 ms, a tenth of a small image's whole check
(issue 13).  These give the same results for the 1-D integer arrays the
reader and the analysis use, with a sort and a comparison.
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


def setdiff(values: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """The distinct values not in ``removed``, ascending (``np.setdiff1d``)."""
    kept, gone = unique(values), unique(removed)
    position = np.searchsorted(gone, kept)
    found = position < len(gone)
    found[found] = gone[position[found]] == kept[found]
    return kept[~found]
