"""The compact stored refcounts (one bit per cluster for "refcount 1", the
decoded values of blocks holding anything else, unreadable blocks) answer
exactly what one full array of refcounts would."""

import numpy as np
import pytest

from qcow2lint.results import StoredRefcounts

PER_BLOCK = 64


def _compact(full: np.ndarray, unreadable_blocks: list[int]) -> StoredRefcounts:
    blocks = -(-len(full) // PER_BLOCK)
    dense = {
        block: full[block * PER_BLOCK : (block + 1) * PER_BLOCK].copy()
        for block in range(blocks)
        if full[block * PER_BLOCK : (block + 1) * PER_BLOCK].max() > 1
    }
    unreadable = None
    if unreadable_blocks:
        unreadable = np.zeros(blocks + 2, bool)  # the refcount table may be longer than the span
        unreadable[unreadable_blocks] = True
    return StoredRefcounts(len(full), PER_BLOCK, full.dtype, np.packbits(full == 1), dense, unreadable)


@pytest.fixture(params=[[], [1, 5]], ids=["all-readable", "unreadable-blocks"])
def case(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray, StoredRefcounts]:
    rng = np.random.default_rng(7)
    full = rng.choice(np.array([0, 1, 1, 1, 2, 65535], np.uint16), 8 * PER_BLOCK + 13)
    full[: 2 * PER_BLOCK] = 1  # blocks of ones only, and blocks with other values
    readable = np.ones(len(full), bool)
    for block in request.param:
        readable[block * PER_BLOCK : (block + 1) * PER_BLOCK] = False
    return full, readable, _compact(full, request.param)


def test_values_of_any_range_match_the_full_array(case):
    full, _, stored = case
    for start, stop in [
        (0, len(full)),
        (3, 70),
        (64, 128),
        (100, 101),
        (500, len(full) + 40),
        (len(full), len(full) + 5),
    ]:
        expected = np.zeros(stop - start, full.dtype)
        inside = full[start:stop]
        expected[: len(inside)] = inside
        assert np.array_equal(stored.values(start, stop), expected), (start, stop)


@pytest.mark.parametrize("spread", [1, 1 << 30], ids=["dense-gather", "sparse-gather"])
def test_of_matches_the_full_array(case, spread):
    full, readable, stored = case
    clusters = np.array([0, 5, 64, 65, 200, 333, len(full) - 1, len(full), len(full) + spread], np.uint64)
    counts, known = stored.of(clusters)
    index = clusters.astype(np.int64)
    inside = index < len(full)
    assert np.array_equal(counts[inside], full[index[inside]])
    assert not counts[~inside].any()
    assert np.array_equal(known[inside], readable[index[inside]]) and known[~inside].all()


def test_readability_by_range_and_count(case):
    full, readable, stored = case
    for start, stop in [(0, len(full)), (60, 130), (320, 400), (len(full) - 3, len(full) + 3)]:
        expected = np.ones(stop - start, bool)
        part = readable[start:stop]
        expected[: len(part)] = part
        assert np.array_equal(stored.readable_mask(start, stop), expected), (start, stop)
    for stop in (0, 100, 384, len(full), len(full) + 100):
        assert stored.unreadable_count(stop) == int(np.count_nonzero(~readable[:stop]))
