"""True totals past the per-rule cap (issue 8, item 3).

An L2 table whose 8192 entries all have reserved bit 1 set gives 8192
l2-reserved-bits errors; max-findings-per-rule (100) caps what is listed,
not what is counted: the text summary, the JSON summary, ``--statistics``
and :meth:`ImageReport.counts` say 8192.
"""

from __future__ import annotations

import json
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import run_cli

import qcow2lint
from qcow2lint.config import load_config
from qcow2lint.registry import load_registry

CLUSTER = 64 * 1024
ENTRIES = CLUSTER // 8


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8192 L2 entries with reserved bit 1 (the data cluster they mapped leaks)."""
    path = tmp_path_factory.mktemp("totals") / "reserved.qcow2"
    ib.create(path, 1 << 30, {"cluster_size": CLUSTER})
    ib.write(path, 0, CLUSTER, 0xAB)
    img = ib.Qcow2Image(path)
    l2 = img.l1[0] & ib.L1E_OFFSET_MASK
    img.write_bytes(l2, (0x2).to_bytes(8, "big") * ENTRIES)
    return path


def test_report_counts_every_finding(image: Path) -> None:
    config = load_config(load_registry(), None, preset="default")
    report = qcow2lint.lint(image, config=config)
    reserved = [f for f in report.findings if f.rule == "l2-reserved-bits"]
    assert len(reserved) == 101  # 100 listed, then "and 8092 more"
    assert reserved[-1].omitted == ENTRIES - 100 and reserved[-1].location == "..."
    assert report.counts() == report.totals == {"error": ENTRIES, "warning": 1, "info": 0}
    assert report.shown() == 101  # 100 l2-reserved-bits, 1 refcount-leak


def test_a_smaller_cap_keeps_the_totals(image: Path, tmp_path: Path) -> None:
    config = tmp_path / "cap.yaml"
    config.write_text("max-findings-per-rule: 3\n")
    report = qcow2lint.lint(image, config=str(config))
    assert report.counts()["error"] == ENTRIES
    assert report.shown() == 4


def test_text_summary_says_how_many_are_shown(image: Path) -> None:
    result = run_cli("check", "--preset", "default", image)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == f"{image}: 8192 errors, 1 warning, 0 info (101 shown)"


def test_json_summary_counts_every_finding(image: Path) -> None:
    document = json.loads(run_cli("check", "--preset", "default", "--format", "json", image).stdout)
    (item,) = document["images"]
    assert item["summary"] == {"error": ENTRIES, "warning": 1, "info": 0, "shown": 101, "root_causes": 102}
    assert item["findings"][-1]["omitted"] == ENTRIES - 100
    summary = document["summary"]
    assert (summary["error"], summary["warning"], summary["shown"]) == (ENTRIES, 1, 101)
    assert item["stats"]["corruptions"] == ENTRIES


def test_statistics_count_every_finding(image: Path) -> None:
    result = run_cli("check", "--preset", "default", "--statistics", image)
    lines = result.stdout.splitlines()
    assert f"     {ENTRIES}  Q0701 l2-reserved-bits" in lines
    assert "        1  Q1107 refcount-leak" in lines
