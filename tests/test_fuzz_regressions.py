"""Inputs the mutation fuzzer (fuzz/fuzz.py) found, kept as small cases:
each must lint with every rule, both dumps and every renderer without an
internal error, within the bounds of docs/cost-model.md."""

from __future__ import annotations

import struct
from pathlib import Path

import imagebuilder as ib
import pytest

import qcow2lint
from qcow2lint.report.dump import build_dump

#: (name, header patches as {offset: (struct format, value)}, the rule the
#: defect must be reported by)
CASES = [
    # cluster_bits 0x6000 with a snapshot table offset: the snapshot-table
    # rule divided by the 0 its cluster size came to (seed "backing").
    ("hostile-cluster-bits", {0x14: (">I", 0x6000), 0x40: (">Q", 0x10200)}, "header-cluster-bits-range"),
    # nb_snapshots past QEMU's 65,536 on a 2 MiB-cluster image: the reader
    # walked 65,536 entries and --deep ran past 20 s (seed "v3-2m").
    ("hostile-nb-snapshots", {0x3C: (">I", 0xBFFFFF)}, "snapshot-count-too-large"),
]


@pytest.mark.parametrize(("name", "patches", "rule"), CASES, ids=[case[0] for case in CASES])
def test_a_fuzz_finding_lints_without_an_internal_error(
    tmp_path: Path, name: str, patches: dict[int, tuple[str, int]], rule: str
) -> None:
    path = tmp_path / f"{name}.qcow2"
    ib.create(path, 8 << 20, {"cluster_size": 2 << 20})
    ib.write(path, 0, 4096, 0x33)
    with open(path, "r+b") as image:
        for offset, (fmt, value) in patches.items():
            image.seek(offset)
            image.write(struct.pack(fmt, value))
    before = path.read_bytes()
    report = qcow2lint.lint(path, preset="pedantic", deep=True, statistics=True)
    assert "internal-error" not in {f.rule for f in report.findings}, report.findings
    assert rule in {f.rule for f in report.findings}
    for as_json in (False, True):
        assert build_dump(str(path), as_json).text
    assert path.read_bytes() == before  # read-only


def test_absurd_cluster_bits_cost_no_memory_in_the_root_cause_linking(tmp_path: Path) -> None:
    """cluster_bits 2,717,909,004 in a data-file image whose findings have
    consequences to link: the linking computed 1 << cluster_bits, a number
    of 340 MB, then more (peak RSS 1.1 GB; fuzz seed 2626, "datafile").
    Measured with tracemalloc: Python's own allocations."""
    import gzip
    import tracemalloc

    source = Path(__file__).parent / "data" / "fuzz" / "cluster-bits-2717909004-linking.qcow2.gz"
    path = tmp_path / source.stem
    path.write_bytes(gzip.decompress(source.read_bytes()))
    tracemalloc.start()
    try:
        report = qcow2lint.lint(path, preset="pedantic", deep=True, statistics=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "header-cluster-bits-range" in {f.rule for f in report.findings}
    assert "internal-error" not in {f.rule for f in report.findings}
    assert peak < 64 << 20
