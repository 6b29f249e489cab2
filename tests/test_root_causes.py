"""Root causes and their consequences (issue 8, item 2).

Each example of the issue is rebuilt from a real ``qemu-img`` image and
one byte patch; the report must hold one root-cause finding, with the
findings that follow from it linked by ``caused_by``:

* an L1 entry pointing 512 bytes into its L2 table: the table QEMU reads
  there ends with 64 entries of guest data (pattern 0x03: reserved bits, a
  misaligned preallocated offset, far out of the file), 192 findings that
  follow from misaligned-l2-table;
* an l1_size too small for the virtual size: the 65 clusters (one L2 table,
  64 data clusters) only the missing L1 entry references leak, one
  refcount-leak finding for the run, following from l1-too-small;
* a misaligned l1_table_offset: the table read there is empty, and every
  L2 table and data cluster (82) leaks, following from misaligned-l1-table;
* the L1 table's cluster with refcount 2: one fact, reported by
  metadata-refcount-not-one alone (no refcount-leak beside it).
"""

from __future__ import annotations

import json
from pathlib import Path

import imagebuilder as ib
import pytest
from consistency_builders import set_refcount
from harness import run_cli

import qcow2lint
from qcow2lint.config import load_config
from qcow2lint.findings import Finding, ImageReport
from qcow2lint.registry import load_registry

CLUSTER = 64 * 1024
GIB = 1 << 30


@pytest.fixture(scope="module")
def config():
    """The default configuration (no discovery from the working directory)."""
    return load_config(load_registry(), None, preset="default")


def _image(path: Path, writes: list[tuple[int, int, int]]) -> ib.Qcow2Image:
    """A 2 GiB v3 image with 64 KiB clusters and ``writes`` (guest offset,
    length, pattern) done by qemu-io."""
    ib.create(path, 2 * GIB, {"cluster_size": CLUSTER})
    for offset, length, pattern in writes:
        ib.write(path, offset, length, pattern)
    return ib.Qcow2Image(path)


def misaligned_l1_entry(path: Path) -> None:
    """l1[2] points 0x200 into its L2 table (at 0x60000): QEMU reads the
    table at 0x60200, whose last 512 bytes are the data cluster after it."""
    img = _image(path, [(0, CLUSTER, 0xAB), (GIB + 3 * CLUSTER, CLUSTER, 0x03)])
    assert img.l1[2] & ib.L1E_OFFSET_MASK == 0x60000
    img.set_l1(2, img.l1[2] + 0x200)


def l1_too_small(path: Path) -> None:
    """l1_size 2 where 4 entries are needed; l1[2] maps 64 written clusters."""
    img = _image(path, [(0, CLUSTER, 0xAB), (GIB, 64 * CLUSTER, 0xCD)])
    img.set_header("l1_size", 2)


def misaligned_l1_table(path: Path) -> None:
    """l1_table_offset moved 0x200 into the L1 table's cluster."""
    img = _image(path, [(0, 16 * CLUSTER, 0xAB), (GIB, 64 * CLUSTER, 0xCD)])
    img.set_header("l1_table_offset", img.header["l1_table_offset"] + 0x200)


def l1_refcount_two(path: Path) -> None:
    """The L1 table's cluster (3) gets refcount 2; it has one reference."""
    img = _image(path, [(0, CLUSTER, 0xAB)])
    assert img.header["l1_table_offset"] == 3 * CLUSTER
    set_refcount(img, 3, 2)


def _lint(path: Path, config) -> ImageReport:
    return qcow2lint.lint(path, config=config)


def _consequences(report: ImageReport, root: Finding) -> list[Finding]:
    return [f for f in report.findings if f.caused_by == root.id]


def test_ids_number_the_findings_in_order(tmp_path: Path, config) -> None:
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    report = _lint(path, config)
    assert [f.id for f in report.findings] == list(range(1, len(report.findings) + 1))


def test_misaligned_l1_entry_is_one_root_with_192_consequences(tmp_path: Path, config) -> None:
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    report = _lint(path, config)
    roots = report.roots()
    assert [(f.rule, f.location, f.offset) for f in roots] == [("misaligned-l2-table", "l1[2]", 0x30010)]
    root = roots[0]
    followers = _consequences(report, root)
    assert len(followers) == len(report.findings) - 1 == 192
    assert {f.rule for f in followers} == {"l2-reserved-bits", "misaligned-preallocated-cluster", "l2-data-out-of-file"}
    # every one is an entry read from the misread table (0x60200..0x70200)
    assert all(f.location.startswith("l2@0x60200[") and 0x60200 <= f.offset < 0x70200 for f in followers)
    assert report.follow_on() == {root.id: 192}
    assert report.counts() == {"error": 193, "warning": 0, "info": 0}


def test_l1_too_small_leaks_are_one_run_following_from_it(tmp_path: Path, config) -> None:
    path = tmp_path / "small.qcow2"
    l1_too_small(path)
    report = _lint(path, config)
    assert [f.rule for f in report.roots()] == ["l1-too-small"]
    root = report.roots()[0]
    assert root.location == "header.l1_size"
    (leak,) = _consequences(report, root)
    assert leak.rule == "refcount-leak" and leak.caused_by == root.id
    # one finding for the 65 adjacent clusters: the L2 table and its data
    assert (
        leak.message == "clusters 6..70 (offsets 0x60000..0x460000, 65 clusters) each have refcount 1 but 0 references"
    )
    assert leak.location == "refblock@0x20000[6]" and leak.offset == 0x20000 + 6 * 2
    assert len(report.findings) == 2


def test_misaligned_l1_table_leaks_follow_from_it(tmp_path: Path, config) -> None:
    path = tmp_path / "l1table.qcow2"
    misaligned_l1_table(path)
    report = _lint(path, config)
    assert [(f.rule, f.location) for f in report.roots()] == [("misaligned-l1-table", "header.l1_table_offset")]
    root = report.roots()[0]
    followers = _consequences(report, root)
    assert [f.rule for f in followers] == ["refcount-leak"]
    assert followers[0].message.startswith("clusters 4..85 (offsets 0x40000..0x550000, 82 clusters) ")


def test_overcounted_metadata_refcount_is_reported_once(tmp_path: Path, config) -> None:
    path = tmp_path / "ref2.qcow2"
    l1_refcount_two(path)
    report = _lint(path, config)
    assert [(f.rule, f.location, f.offset) for f in report.findings] == [("metadata-refcount-not-one", "l1", 0x30000)]
    assert report.findings[0].message == "active-l1 l1 at 0x30000: cluster 3 has refcount 2, must be 1"
    assert report.findings[0].caused_by is None


def test_an_unrelated_finding_stays_a_root(tmp_path: Path, config) -> None:
    """A defect elsewhere in the image does not fold into the root cause."""
    path = tmp_path / "two.qcow2"
    misaligned_l1_entry(path)
    ib.Qcow2Image(path).set_header_padding(1, 1)
    report = _lint(path, config)
    assert sorted(f.rule for f in report.roots()) == ["header-padding-nonzero", "misaligned-l2-table"]


def test_text_prints_the_root_with_its_follow_on_count(tmp_path: Path) -> None:
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    result = run_cli("check", "--preset", "default", path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0] == (
        f"{path}:0x30010: Q0602 misaligned-l2-table error [l1[2]] L2 table offset 0x60200 (L1 entry "
        "0x8000000000060200) is not a multiple of the cluster size 0x10000 "
        "(+192 follow-on findings; --show-all lists them)"
    )
    assert lines[1] == f"{path}: 193 errors, 0 warnings, 0 info (1 shown)"


def test_show_all_lists_every_finding_with_its_cause(tmp_path: Path) -> None:
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    result = run_cli("check", "--preset", "default", "--show-all", path)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 194
    assert lines[0].endswith("(+192 follow-on findings)")
    follows = [line for line in lines if line.endswith("[follows from 0x30010 Q0602 misaligned-l2-table]")]
    assert len(follows) == 192
    assert lines[-1] == f"{path}: 193 errors, 0 warnings, 0 info"


def test_exit_code_follows_consequences_too(tmp_path: Path) -> None:
    """A warning-level root with error-level consequences still fails at
    the error level: the verdict sees every finding."""
    path = tmp_path / "small.qcow2"
    l1_too_small(path)
    config = tmp_path / "c.yaml"
    config.write_text("rules:\n  l1-too-small: {level: warning}\n  refcount-leak: {level: error}\n")
    assert run_cli("check", "--preset", "default", "-c", config, path).returncode == 1
    config.write_text("rules:\n  l1-too-small: {level: warning}\n")
    assert run_cli("check", "--preset", "default", "-c", config, path).returncode == 0


def test_json_gives_every_finding_with_caused_by(tmp_path: Path) -> None:
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    result = run_cli("check", "--preset", "default", "--format", "json", path)
    document = json.loads(result.stdout)
    (image,) = document["images"]
    findings = image["findings"]
    assert len(findings) == 193
    assert findings[0]["id"] == 1 and findings[0]["caused_by"] is None and findings[0]["rule"] == "misaligned-l2-table"
    assert all(f["caused_by"] == 1 for f in findings[1:])
    assert [f["id"] for f in findings] == list(range(1, 194))
    assert image["summary"] == {"error": 193, "warning": 0, "info": 0, "shown": 193, "root_causes": 1}


def test_sarif_links_each_consequence_to_its_cause(tmp_path: Path) -> None:
    path = tmp_path / "small.qcow2"
    l1_too_small(path)
    result = run_cli("check", "--preset", "default", "--format", "sarif", path)
    results = json.loads(result.stdout)["runs"][0]["results"]
    assert len(results) == 2
    root, leak = results
    assert root["properties"] == {"findingId": 1, "followOnFindings": 1}
    assert "relatedLocations" not in root
    (related,) = leak["relatedLocations"]
    assert related["id"] == 1
    assert related["physicalLocation"]["region"] == {"byteOffset": 0x24, "byteLength": 1}
    assert related["logicalLocations"] == [{"fullyQualifiedName": "header.l1_size", "kind": "member"}]
    assert related["message"]["text"].startswith("Root cause: Q0503 l1-too-small: l1_size 2 is too small")
    assert leak["properties"] == {"findingId": 2, "causedBy": 1}
    assert leak["message"]["text"].endswith("It follows from the root cause Q0503 l1-too-small at 0x24.")


def test_ci_formats_fold_consequences_into_the_root(tmp_path: Path) -> None:
    """GitHub annotations and GitLab issues: one per root cause, with the
    count of its follow-on findings; JUnit lists them all, with the cause."""
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    github = run_cli("check", "--preset", "default", "--format", "github", path).stdout.splitlines()
    assert len(github) == 1 and github[0].startswith("::error ") and github[0].endswith("(+192 follow-on findings)")
    gitlab = json.loads(run_cli("check", "--preset", "default", "--format", "gitlab", path).stdout)
    assert len(gitlab) == 1 and gitlab[0]["description"].endswith("(+192 follow-on findings)")
    junit = run_cli("check", "--preset", "default", "--format", "junit", path).stdout
    assert junit.count("[follows from 0x30010 Q0602 misaligned-l2-table]") == 192


def test_per_file_ignores_of_the_root_make_its_consequences_roots(tmp_path: Path) -> None:
    path = tmp_path / "small.qcow2"
    l1_too_small(path)
    config = tmp_path / "c.yaml"
    config.write_text("per-file-ignores:\n  '*.qcow2': [l1-too-small]\n")
    report = qcow2lint.lint(path, config=str(config))
    assert [(f.rule, f.caused_by) for f in report.findings] == [("refcount-leak", None)]


def test_misaligned_snapshot_l1_table_explains_the_snapshot_only_leaks(tmp_path: Path, config) -> None:
    """qemu-img check skips a snapshot L1 table at a misaligned offset: the
    clusters only that snapshot references (its L2 table and 4 data
    clusters, overwritten in the active disk after the snapshot) leak."""
    path = tmp_path / "snap.qcow2"
    ib.create(path, 2 * GIB, {"cluster_size": CLUSTER})
    ib.write(path, 0, 4 * CLUSTER, 0xAB)
    ib.snapshot_create(path, "s1")
    ib.write(path, 0, 4 * CLUSTER, 0x11)
    img = ib.Qcow2Image(path)
    img.set_snapshot_field("s1", "l1_table_offset", img.snapshot("s1").fields["l1_table_offset"] + 0x200)
    report = _lint(path, config)
    (root,) = report.roots()
    assert (root.rule, root.location) == ("misaligned-snapshot-l1-table", "snapshots[0](1).l1_table_offset")
    assert [(f.rule, f.caused_by) for f in _consequences(report, root)] == [("refcount-leak", root.id)]
    assert len(report.findings) == 2


def test_l2_table_on_metadata_explains_the_misread_references(tmp_path: Path, config) -> None:
    """l1[0] points at the refcount table: QEMU reads it as an L2 table, and
    its entry 0 (the refcount block's offset) maps the block as guest data."""
    path = tmp_path / "l2meta.qcow2"
    img = _image(path, [(0, CLUSTER, 0xAB)])
    reftable = img.header["refcount_table_offset"]
    img.set_l1(0, (1 << 63) | reftable)
    report = _lint(path, config)
    roots = [f for f in report.roots() if f.rule != "refcount-leak"]  # the real L2 table and data leak
    assert [(f.rule, f.location) for f in roots] == [("l1-entry-points-to-metadata", f"l2@{reftable:#x}")]
    followers = {f.rule for f in _consequences(report, roots[0])}
    assert {"metadata-overlap", "refcount-too-low", "l2-copied-mismatch"} <= followers


def test_l1_too_large_folds_what_is_read_past_the_needed_entries(tmp_path: Path, config) -> None:
    """l1_size 4194305: QEMU refuses the table; read with that many entries
    it runs over the L2 tables and data that follow it and past the end of
    the file.  Everything read from there follows from l1-too-large."""
    path = tmp_path / "large.qcow2"
    img = _image(path, [(0, CLUSTER, 0xAB), (GIB + 3 * CLUSTER, CLUSTER, 0xCD)])
    img.set_header("l1_size", 4194305)
    report = _lint(path, config)
    (root,) = report.roots()
    assert (root.rule, root.location) == ("l1-too-large", "header.l1_size")
    followers = _consequences(report, root)
    assert len(followers) == len(report.findings) - 1 > 100
    assert {"l2-reserved-bits", "misaligned-l2-table", "refcount-leak"} <= {f.rule for f in followers}


def test_reftable_too_large_folds_what_is_read_past_the_needed_entries(tmp_path: Path, config) -> None:
    """refcount_table_clusters 129 (8 MiB + 64 KiB): QEMU refuses the table;
    read in full it runs over the refcount block, L1 and L2 tables and data
    that follow it: every finding from there follows from reftable-too-large."""
    path = tmp_path / "reftable.qcow2"
    img = _image(path, [(0, CLUSTER, 0xAB), (GIB + 3 * CLUSTER, CLUSTER, 0xCD)])
    img.set_header("refcount_table_clusters", 129)
    report = _lint(path, config)
    (root,) = report.roots()
    assert (root.rule, root.location) == ("reftable-too-large", "header.refcount_table_clusters")
    assert {"metadata-overlap", "reftable-reserved-bits"} <= {f.rule for f in _consequences(report, root)}


def test_a_file_cut_inside_its_header_is_one_root(tmp_path: Path, config) -> None:
    """Everything read past the end of a 50-byte file is zeros: every other
    finding (a missing refcount table, an L1 table out of the file, ...)
    follows from header-file-too-short."""
    path = tmp_path / "cut.qcow2"
    ib.create(path, 64 << 20)
    path.write_bytes(path.read_bytes()[:50])
    report = _lint(path, config)
    [root] = report.roots()
    assert root.rule == "header-file-too-short"
    assert len(_consequences(report, root)) == len(report.findings) - 1 >= 5
    assert {"l1-out-of-file", "reftable-missing"} <= {f.rule for f in report.findings}


def test_misaligned_refcount_table_is_one_root(tmp_path: Path, config) -> None:
    """refcount_table_offset moved 0x200 into its cluster: the table read
    there is garbage (reserved bits in what it reads as entries), and every
    refcount read through it is wrong (refcount 0 on the L1 table, the L2
    tables and data, COPIED flags that disagree, a coverage gap): all of it
    follows from misaligned-refcount-table."""
    path = tmp_path / "reftable.qcow2"
    img = _image(path, [(0, CLUSTER, 0xAB), (GIB + 3 * CLUSTER, CLUSTER, 0xCD)])
    img.set_header("refcount_table_offset", img.header["refcount_table_offset"] + 0x200)
    report = _lint(path, config)
    roots = [f for f in report.roots() if f.rule != "file-truncated"]  # a garbage entry names a block past the end
    assert [(f.rule, f.location) for f in roots] == [("misaligned-refcount-table", "header.refcount_table_offset")]
    followers = {f.rule for f in _consequences(report, roots[0])}
    assert {"refcount-zero-used", "metadata-refcount-not-one", "l1-copied-mismatch", "l2-copied-mismatch"} <= followers
    assert len(report.roots()) <= 2 < len(report.findings)


def test_misaligned_snapshot_table_is_one_root(tmp_path: Path, config) -> None:
    """snapshot_offset moved 0x200 into its cluster: QEMU reads a garbage
    entry there (nb_snapshots counts a blank one), and the snapshot of the
    real table is unaccounted for: its L1 table, and the L2 table and data
    it shares, leak, and the table read there runs past the end of the file
    (file-truncated, about that one structure).  All of it follows from
    misaligned-snapshot-table."""
    path = tmp_path / "snaptable.qcow2"
    ib.create(path, 2 * GIB, {"cluster_size": CLUSTER})
    ib.write(path, 0, 4 * CLUSTER, 0xAB)
    ib.snapshot_create(path, "s1")
    img = ib.Qcow2Image(path)
    img.set_header("snapshots_offset", img.header["snapshots_offset"] + 0x200)
    report = _lint(path, config)
    roots = report.roots()
    assert [(f.rule, f.location) for f in roots] == [("misaligned-snapshot-table", "header.snapshot_offset")]
    followers = _consequences(report, roots[0])
    assert len(followers) == len(report.findings) - 1 >= 4
    assert {"refcount-leak", "snapshot-table-out-of-file", "file-truncated"} <= {f.rule for f in followers}


def test_a_coverage_gap_explains_the_refcounts_it_reads_as_zero(tmp_path: Path, config) -> None:
    """The refcount table's only entry cleared: every cluster in use has
    refcount 0, one fact of reftable-coverage-gap."""
    path = tmp_path / "gap.qcow2"
    img = _image(path, [(0, CLUSTER, 0xAB)])
    img.write_int(img.header["refcount_table_offset"], "Q", 0)
    report = _lint(path, config)
    (root,) = report.roots()
    assert (root.rule, root.location) == ("reftable-coverage-gap", "reftable[0]")
    assert {"refcount-zero-used", "l1-copied-mismatch"} <= {f.rule for f in _consequences(report, root)}


def test_findings_name_what_they_are_about(tmp_path: Path, config) -> None:
    """The linking reads structured fields, never a location string: an L2
    entry's finding names its table, an L1 entry's COPIED finding the L2
    table and its cluster, a refcount finding its clusters."""
    path = tmp_path / "entry.qcow2"
    misaligned_l1_entry(path)
    report = _lint(path, config)
    entries = [f for f in report.findings if f.location.startswith("l2@")]
    assert entries and all(f.about == 0x60200 for f in entries)
    path = tmp_path / "copied.qcow2"
    img = _image(path, [(0, CLUSTER, 0xAB)])
    img.set_l1(0, img.l1[0] & ~(1 << 63))
    (finding,) = _lint(path, config).findings
    assert (finding.rule, finding.about, finding.clusters) == ("l1-copied-mismatch", 0x40000, (4, 4))
