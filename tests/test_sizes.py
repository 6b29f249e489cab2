"""Byte counts in messages: the largest binary unit a size reaches, a
whole number when it is one, two decimals otherwise."""

from __future__ import annotations

import harness
import imagebuilder as ib
import pytest

from qcow2lint.engine import lint_path
from qcow2lint.text import format_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1, "1 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1024, "1 KiB"),
        (1025, "1.00 KiB"),
        (1536, "1.50 KiB"),
        (16 << 10, "16 KiB"),
        ((1 << 20) - 1, "1.00 MiB"),  # 1023.999 KiB: never "1024.00 KiB"
        (1 << 20, "1 MiB"),
        (64 << 20, "64 MiB"),  # was "0.00 TiB"
        ((1 << 30) - 1, "1.00 GiB"),
        (1 << 30, "1 GiB"),
        (3 << 29, "1.50 GiB"),
        (2 << 40, "2 TiB"),
        (4398046511104, "4 TiB"),
        ((1 << 50) - 1, "1.00 PiB"),
        (1 << 52, "4 PiB"),
        (1 << 60, "1 EiB"),
        (1 << 61, "2 EiB"),
        ((1 << 64) - 1, "16.00 EiB"),
        (1 << 64, "16 EiB"),
        (1 << 70, "1024 EiB"),  # no unit above EiB
        ((1 << 70) + 1, "1024.00 EiB"),
        (10**18, "888.18 PiB"),
        (-(64 << 20), "-64 MiB"),
    ],
)
def test_format_size(size: int, shown: str) -> None:
    assert format_size(size) == shown


def test_rounding_is_half_up_and_exact_for_sizes_past_a_double() -> None:
    """Integer arithmetic: a half rounds up (a float format would round
    1.125 to even), and a size that is no double is not rounded first."""
    assert format_size(1152) == "1.13 KiB"  # 1.125 KiB
    assert format_size(1151) == "1.12 KiB"
    assert float(9 * 2**57 + 1) == 9 * 2**57  # the float would say 1.125 EiB
    assert format_size(9 * 2**57 + 1) == "1.13 EiB"
    assert format_size(9 * 2**57 - 1) == "1.12 EiB"


@pytest.mark.parametrize(
    ("virtual", "limit", "message"),
    [
        (
            128 << 20,
            64 << 20,
            "virtual size 134217728 bytes (128 MiB) is above max-virtual-size 67108864 bytes (64 MiB)",
        ),
        (
            (3 << 40) + (1 << 39),
            2 << 40,
            "virtual size 3848290697216 bytes (3.50 TiB) is above max-virtual-size 2199023255552 bytes (2 TiB)",
        ),
    ],
)
def test_virtual_size_too_large_says_sizes_in_their_unit(tmp_path, virtual: int, limit: int, message: str) -> None:
    """It said ``0.06 TiB``/``0.12 TiB`` for 64/128 MiB: every size in TiB."""
    image = ib.create(tmp_path / "big.qcow2", virtual)
    config = harness.config(f"rules:\n  virtual-size-too-large: {{max-virtual-size: {limit}}}\n")
    findings = [f for f in lint_path(image, config, harness.registry()).findings if f.rule == "virtual-size-too-large"]
    assert [f.message for f in findings] == [message]
