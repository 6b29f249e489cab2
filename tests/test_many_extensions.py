"""Thousands of header extensions: ext-order and ext-duplicate judge them
in one walk per image, with the same findings as the pairwise definition.

The header of a 64 KiB-cluster image holds (65536 - 112) / 8 - 1 = 8,177
empty extensions before the end of cluster 0 (issue 9: the rules used to be
quadratic in that number).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from imagebuilder import EXT_BACKING_FORMAT, EXT_FEATURE_TABLE, create

import qcow2lint
from qcow2lint.config import load_config
from qcow2lint.registry import load_registry

UNKNOWN = 0x12345678
COUNT = 8177


def _only(rules: list[str], tmp_path: Path) -> object:
    registry = load_registry()
    lines = ["max-findings-per-rule: 0", "rules:"]
    lines += [f"  {rule.name}: {'enable' if rule.name in rules else 'disable'}" for rule in registry]
    path = tmp_path / "only.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_config(registry, path)


@pytest.fixture(scope="module")
def many_extensions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Extension 0 of unknown type, then backing format and feature table
    extensions (length 0) alternating, filling cluster 0."""
    path = create(tmp_path_factory.mktemp("ext") / "many.qcow2", "1M", {"cluster_size": 65536})
    magics = [UNKNOWN] + [EXT_BACKING_FORMAT if i % 2 else EXT_FEATURE_TABLE for i in range(1, COUNT)]
    area = b"".join(struct.pack(">II", magic, 0) for magic in magics) + bytes(8)
    with open(path, "r+b") as handle:
        handle.seek(112)
        assert 112 + len(area) <= 65536
        handle.write(area)
    return path


def test_ext_order_over_thousands_of_extensions(many_extensions: Path, tmp_path: Path) -> None:
    report = qcow2lint.lint(many_extensions, _only(["ext-order"], tmp_path))
    found = [f for f in report.findings if f.rule == "ext-order"]
    # Every extension after the unknown one comes after it in QEMU's order.
    assert len(found) == COUNT - 1
    assert [f.location for f in found] == [
        f"extensions[{i}]({'backing-format' if i % 2 else 'feature-table'})" for i in range(1, COUNT)
    ]
    assert all("comes after the unknown extension 0x12345678 (extensions[0](0x12345678))" in f.message for f in found)


def test_ext_duplicate_over_thousands_of_extensions(many_extensions: Path, tmp_path: Path) -> None:
    report = qcow2lint.lint(many_extensions, _only(["ext-duplicate"], tmp_path))
    found = [f for f in report.findings if f.rule == "ext-duplicate"]
    # The first backing format (1) and feature table (2) are not duplicates.
    assert len(found) == COUNT - 3
    firsts = {"backing-format": "extensions[1](backing-format)", "feature-table": "extensions[2](feature-table)"}
    for f in found:
        kind = f.location.split("(")[1].rstrip(")")
        assert f"{firsts[kind]}); QEMU uses the last one" in f.message
    assert found[0].location == "extensions[3](backing-format)"


def test_ext_order_mixed_ranks(tmp_path: Path) -> None:
    """The first earlier extension of any higher rank is named, not the highest."""
    path = create(tmp_path / "mixed.qcow2", "1M")
    # feature table (rank 3), bitmaps? no: unknown (5), then backing format (0)
    magics = [EXT_FEATURE_TABLE, UNKNOWN, EXT_BACKING_FORMAT, EXT_FEATURE_TABLE]
    area = b"".join(struct.pack(">II", magic, 0) for magic in magics) + bytes(8)
    with open(path, "r+b") as handle:
        handle.seek(112)
        handle.write(area)
    report = qcow2lint.lint(path, _only(["ext-order"], tmp_path))
    found = [(f.location, f.message.split("comes after the ")[1].split(";")[0]) for f in report.findings]
    assert found == [
        ("extensions[2](backing-format)", "Feature table extension (extensions[0](feature-table))"),
        ("extensions[3](feature-table)", "unknown extension 0x12345678 (extensions[1](0x12345678))"),
    ]
