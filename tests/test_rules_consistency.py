"""Rule tests for L1/L2 entries, extended L2, compressed clusters, the
external data file, refcounts and metadata overlaps (catalogue §2.6-§2.12),
from rows_consistency.py.  For every rule:

(a) the patched image fires the rule (once, unless the row says otherwise)
    with the catalogue's severity, at the patched offset and structure path;
(b) the rule's clean base does not fire it;
(c) with ``rules: {NAME: disable}`` it does not fire.

``test_qemu_agrees`` proves each recipe makes the defect it claims: where
the catalogue says ``qemu-img check`` reports it, check does (exit code and
stderr line); where it says QEMU is silent, check passes, and the runtime
failure the catalogue names (a read or write through qemu-io) happens.  The
rows run in-process (harness.lint; ``deep`` where the row says so).
"""

from __future__ import annotations

from pathlib import Path

import consistency_builders as cb
import imagebuilder as ib
from baseimages import PATCH_L1_INDEX
from harness import (
    Bases,
    assert_all_found,
    check_table,
    format_findings,
    lint,
)
from rows_consistency import (
    COPIED,
    ROWS,
    RULES,
    _l1,
    _set_spare,
    patch_refblock_past_eof,
    patch_refcount_beyond_eof,
)


def test_every_rule_has_a_row() -> None:
    """The table covers every rule this file is about, and only those."""
    check_table(ROWS, RULES)


def test_clean_bases_have_no_errors_or_warnings(base_images: Bases) -> None:
    """Real qemu-img images (every clean base a row patches) get no error or
    warning from these rules; rc1-snap is the one base that is a defect."""
    # the refcount_bits=1 snapshot overflows, so its refcounts read 1 where
    # COPIED is clear: QEMU reports the same OFLAG_COPIED errors
    expected = {"rc1-snap": {"refcount-overflow", "l1-copied-mismatch", "l2-copied-mismatch"}}
    wrong = {}
    names = sorted({row.base for row in ROWS} | {row.quiet_base for row in ROWS} | set(cb.RECIPES))
    for name in names:
        serious = [
            f for f in base_images.lint(name).findings if f["rule"] in RULES and f["severity"] in ("error", "warning")
        ]
        if {f["rule"] for f in serious} != expected.get(name, set()):
            wrong[name] = format_findings(serious)
    assert not wrong, "\n".join(f"{name}:\n{text}" for name, text in wrong.items())


def test_compressed_payloads_sharing_a_host_cluster_are_not_shared_data(base_images: Bases) -> None:
    """QEMU packs compressed payloads into host clusters: several payloads in
    one cluster give it refcount 2 or more, by design (catalogue §1.6).  That
    is not two L2 entries mapping one data cluster (§2.7), so
    l2-shared-data-cluster must stay quiet on the clean compressed images."""
    wrong = {}
    for name in ("zlib", "zstd", "spread-zlib", "spread-zstd", "extl2-zlib"):
        hits = base_images.lint(name).fired.get("l2-shared-data-cluster", [])
        if hits:
            wrong[name] = format_findings(hits)
    assert not wrong, "\n".join(f"{name}:\n{text}" for name, text in wrong.items())


def test_undecompressible_only_with_deep(base_images: Bases) -> None:
    """A clean compressed payload is quiet with --deep; a broken one is only
    found with --deep (catalogue §2.9: check never decompresses)."""
    for name in ("zlib", "zstd", "spread-zlib", "spread-zstd"):
        report = lint(base_images.path(name), deep=True)
        assert "compressed-undecompressible" not in report.fired, format_findings(report.findings)


def test_many_defects_in_one_image(base_images: Bases, tmp_path: Path) -> None:
    """Four consistency defects in one image are all reported in one run."""
    path = base_images.copy("v3", tmp_path, "multi.qcow2")
    img = ib.Qcow2Image(path)
    l1_target = _l1(PATCH_L1_INDEX, lambda i, e: e & ~COPIED)(img)
    spare_target = _set_spare(COPIED)(img)
    refblock_target = patch_refblock_past_eof(img)
    beyond_target = patch_refcount_beyond_eof(img)
    expected = {
        "l1-copied-mismatch": l1_target,
        "l2-offset0-copied-without-data-file": spare_target,
        "refblock-out-of-file": refblock_target,
        "refcount-beyond-eof": beyond_target,
    }
    assert_all_found(lint(path), expected)
    result = ib.qemu_check(path)
    assert result.returncode == 2 and "refcount block 1 is outside image" in result.output, result.output
