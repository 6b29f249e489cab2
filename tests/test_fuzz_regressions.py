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


def _one_block_everywhere(path: Path, cluster_size: int, names: list[int] | None = None, **options: object) -> None:
    """An image whose refcount table entries all name its one refcount block
    (or, with ``names``, entry i names the cluster ``names[i]``)."""
    ib.create(path, 8 << 20, {"cluster_size": cluster_size, **options})
    ib.write(path, 0, 4096, 0x33)
    img = ib.Qcow2Image(path)
    table = img.header["refcount_table_offset"]
    (block,) = img.read_u64_table(table, 1)
    entries = img.header["refcount_table_clusters"] * cluster_size // 8
    offsets = [block] * entries if names is None else [cluster * cluster_size for cluster in names]
    img.write_bytes(table, struct.pack(f">{len(offsets)}Q", *offsets))


def _weights(report: qcow2lint.ImageReport, rule: str) -> int:
    return sum(f.weight for f in report.findings if f.rule == rule)


def test_a_refcount_table_naming_one_block_everywhere(tmp_path: Path) -> None:
    """2 MiB clusters, a 2 MiB refcount table whose 262,144 entries all name
    the one refcount block (fuzz seed "v3-2m"): QEMU counts the block once
    per entry, so the k-th entry sees refcount k (saturated at 65,535, each
    increment past it an overflow): 262,143 blocks with a refcount other
    than 1, 196,609 overflows, 458,753 corruptions as `qemu-img check`
    counts them.  The refcount pass counted the entries one at a time (9 s
    of the fuzzer's 10 s bound)."""
    path = tmp_path / "one-block.qcow2"
    _one_block_everywhere(path, 2 << 20)
    report = qcow2lint.lint(path, preset="pedantic", deep=True, statistics=True)
    assert report.stats is not None and report.stats["corruptions"] == 458753
    assert _weights(report, "refblock-refcount-not-one") == 262143
    shown = [f.message for f in report.findings if f.rule == "refblock-refcount-not-one" and not f.omitted]
    assert shown[:3] == [f"refcount block at 0x400000 has {n} references, must be 1" for n in (2, 3, 4)]


def test_refcount_table_entries_naming_blocks_again_count_as_qemu_does(tmp_path: Path) -> None:
    """4-bit refcounts (at most 15) and a refcount table that names its block
    (cluster 2), the L1 table's cluster (3) and a data cluster (5) again and
    again, interleaved:
    each entry sees its block's count so far, saturated at 15, as
    `qemu-img check` reports it ("ERROR refcount block N refcount=M")."""
    path = tmp_path / "interleaved.qcow2"
    names = [2, 3, 2, 2, 3] + [2] * 20 + [3] * 14 + [5, 2]
    _one_block_everywhere(path, 64 << 10, names, refcount_bits=4)
    qemu = ib.qemu_check(path).output
    expected = sorted(
        (int(index), int(count))
        for index, count in (line.split()[3:5] for line in qemu.splitlines() if line.startswith("ERROR refcount block"))
        for count in [count.removeprefix("refcount=")]
    )
    report = qcow2lint.lint(path, preset="pedantic", deep=True, statistics=True)
    found = sorted(
        (int(f.location[len("reftable[") : -1]), int(f.message.split(" has ")[1].split()[0]))
        for f in report.findings
        if f.rule == "refblock-refcount-not-one"
    )
    # only the first naming of the block sees 1: the L1 table and data
    # clusters named as blocks already have their own reference
    assert found == expected and len(found) == len(names) - 1
    corruptions = int(next(line for line in qemu.splitlines() if "errors were found" in line).split()[0])
    assert report.stats is not None and report.stats["corruptions"] == corruptions
