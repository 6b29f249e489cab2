"""qcow2lint.arrays gives the results of np.unique, np.setdiff1d and np.intersect1d."""

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
    assert np.array_equal(arrays.intersect(values, removed), np.intersect1d(values, removed))
    assert np.array_equal(arrays.intersect(values, removed[:0]), expected[:0])


def test_a_check_of_snapshots_and_compressed_clusters_does_not_import_numpy_ma(tmp_path):
    """np.unique imports numpy.ma (milliseconds of a small image's check):
    the reader and the analysis use the helpers above instead, also on the
    paths only snapshots, compressed clusters and --deep take."""
    import subprocess
    import sys

    import imagebuilder as ib

    path = ib.create(tmp_path / "a.qcow2", 64 << 20)
    ib.write(path, 0, 4 << 20, 0x11)
    ib.write(path, 8 << 20, 1 << 20, 0x22, compressed=True)
    ib.snapshot_create(path, "one")
    ib.write(path, 0, 1 << 20, 0x33)
    ib.write(path, 16 << 20, 1 << 20, 0x44, compressed=True)
    ib.snapshot_create(path, "two")
    code = (
        "import sys, qcow2lint\n"
        f"report = qcow2lint.lint({str(path)!r}, deep=True, statistics=True)\n"
        "assert report.stats['compressed-clusters'] and not report.findings, report\n"
        "print('numpy.ma' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("size", [0, 1, 2, 50, 1000])
def test_counts_and_pairs_same_results_as_numpy(size):
    rng = np.random.default_rng(size)
    values = rng.integers(0, max(size // 3, 1), size).astype(np.int64)
    _, expected_counts = np.unique(values, return_counts=True)
    assert np.array_equal(arrays.counts(values), expected_counts)
    offsets = rng.integers(0, max(size // 4, 1), size).astype(np.uint64) << np.uint64(9)
    lengths = rng.integers(1, 3, size).astype(np.uint64) << np.uint64(9)
    _, expected_first, expected_inverse = np.unique(
        np.stack([offsets, lengths], axis=1), axis=0, return_index=True, return_inverse=True
    )
    first, inverse = arrays.unique_pairs(offsets, lengths)
    assert np.array_equal(first, expected_first)
    assert np.array_equal(inverse, expected_inverse.ravel())
