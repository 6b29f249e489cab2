"""qcow2lint.arrays gives np.unique's and np.setdiff1d's results."""

import numpy as np
import pytest

from qcow2lint import arrays


@pytest.mark.parametrize("dtype", [np.uint64, np.int64, np.intp])
@pytest.mark.parametrize("size", [0, 1, 2, 50, 1000])
def test_same_results_as_numpy(dtype, size):
    rng = np.random.default_rng(size)
    values = rng.integers(0, max(size // 3, 1), size).astype(dtype)
    removed = rng.integers(0, max(size // 3, 1), size // 2 + 1).astype(dtype)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    got, inverse = arrays.unique_inverse(values)
    assert np.array_equal(got, expected) and got.dtype == expected.dtype
    assert np.array_equal(inverse, expected_inverse.ravel())
    assert np.array_equal(arrays.unique(values), expected)
    assert np.array_equal(arrays.setdiff(values, removed), np.setdiff1d(values, removed))
    assert np.array_equal(arrays.setdiff(values, removed[:0]), expected)
