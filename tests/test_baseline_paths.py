"""Baselines on the command line (issue 11): generating says what it wrote
and exits 0; applying says how many findings it suppressed and warns about
entries that match nothing; image paths are relative to the baseline file,
so the baseline works from any working directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imagebuilder as ib
import pytest
from harness import REPO_ROOT, run_cli

DEMO = REPO_ROOT / "examples" / "demo.qcow2"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """project/images/{a,b}.qcow2 (the demo image) and project/ci/."""
    root = tmp_path / "project"
    (root / "images").mkdir(parents=True)
    (root / "ci").mkdir()
    for name in ("a.qcow2", "b.qcow2"):
        shutil.copyfile(DEMO, root / "images" / name)
    return root


def test_generate_writes_says_so_and_exits_0(project: Path) -> None:
    result = run_cli("check", "--generate-baseline", "ci/baseline.json", "images", cwd=project)
    assert (result.returncode, result.stdout, result.stderr) == (0, "wrote 6 entries to ci/baseline.json\n", "")
    document = json.loads((project / "ci" / "baseline.json").read_text())
    images = sorted({entry["image"] for entry in document["findings"]})
    assert images == ["../images/a.qcow2", "../images/b.qcow2"]  # relative to the baseline's directory


def test_a_baseline_works_from_any_working_directory(project: Path, tmp_path: Path) -> None:
    assert run_cli("check", "--generate-baseline", "ci/baseline.json", "images", cwd=project).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for cwd, baseline, images in (
        (project, "ci/baseline.json", "images"),
        (project / "ci", "baseline.json", "../images"),
        (elsewhere, str(project / "ci" / "baseline.json"), str(project / "images")),
        (elsewhere, "../project/ci/baseline.json", "../project/images"),
    ):
        result = run_cli("check", "--baseline", baseline, images, cwd=cwd)
        assert result.returncode == 0, (cwd, result.stdout, result.stderr)
        assert "Q0701" not in result.stdout
        assert result.stderr == f"qcow2lint: baseline {baseline}: suppressed 6 findings\n"
        assert result.stdout.endswith(
            "checked 2 images: 0 errors, 0 warnings, 0 info (0 images with findings, 6 suppressed by the baseline)\n"
        )


def test_new_findings_are_reported_and_stale_entries_warned_about(project: Path) -> None:
    assert run_cli("check", "--generate-baseline", "ci/baseline.json", "images", cwd=project).returncode == 0
    a = project / "images" / "a.qcow2"
    ib.Qcow2Image(a).set_header_padding(1, 0)  # fixes the padding defect of a
    ib.Qcow2Image(a).set_header_padding(2, 0x7)  # ... and plants the same defect again: same fingerprint
    shutil.copyfile(project / "images" / "b.qcow2", project / "images" / "c.qcow2")  # a new image
    header = bytearray((project / "images" / "b.qcow2").read_bytes())
    result = run_cli("check", "-q", "--baseline", "ci/baseline.json", "images", cwd=project)
    assert result.returncode == 1
    assert all("c.qcow2" in line for line in result.stdout.splitlines()[:-1])  # only the new image's findings
    assert result.stderr == ""  # --quiet: no count, and nothing is stale
    # Fix b's padding: its baseline entry no longer matches anything.
    header[0x69:0x70] = bytes(7)
    (project / "images" / "b.qcow2").write_bytes(bytes(header))
    result = run_cli("check", "--baseline", "ci/baseline.json", "images/a.qcow2", "images/b.qcow2", cwd=project)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "qcow2lint: baseline ci/baseline.json: suppressed 5 findings",
        "qcow2lint: warning: baseline ci/baseline.json: 1 of its findings in the checked images no longer occur "
        "(fixed, or moved); regenerate it with --generate-baseline",
    ]
    # Entries of images that were not checked are not stale.
    only_a = run_cli("check", "--baseline", "ci/baseline.json", "images/a.qcow2", cwd=project)
    assert "warning" not in only_a.stderr


def test_silent_generation_and_machine_formats_keep_stdout_clean(project: Path) -> None:
    result = run_cli("check", "-s", "--generate-baseline", "ci/b.json", "images", cwd=project)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    applied = run_cli("check", "-f", "json", "--baseline", "ci/b.json", "images", cwd=project)
    assert json.loads(applied.stdout)["summary"]["error"] == 0
    assert applied.stderr == "qcow2lint: baseline ci/b.json: suppressed 6 findings\n"


def test_generating_with_an_unreadable_image_exits_2(project: Path) -> None:
    result = run_cli("check", "--generate-baseline", "ci/b.json", "images", "images/missing.qcow2", cwd=project)
    assert result.returncode == 2
    assert result.stdout == "wrote 6 entries to ci/b.json\n"
    assert result.stderr.splitlines() == ["qcow2lint: error: images/missing.qcow2: no such file or directory"]


def test_a_missing_target_folder_fails_before_any_work(project: Path) -> None:
    result = run_cli("check", "--generate-baseline", "nope/b.json", "images", cwd=project)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "qcow2lint: error: --generate-baseline nope/b.json: no such directory: nope\n"
    result = run_cli("check", "-o", "nope/r.sarif", "-f", "sarif", "images", cwd=project)
    assert result.stderr == "qcow2lint: error: --output-file nope/r.sarif: no such directory: nope\n"
