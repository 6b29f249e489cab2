"""The Python API: ``qcow2lint.read`` and ``qcow2lint.lint`` on real images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imagebuilder as ib
import numpy as np
import pytest
from baseimages import PATCH_L1_INDEX, PATCH_L2_INDEX
from harness import REPO_ROOT, Bases, lint_json

import qcow2lint


def test_import_is_cheap() -> None:
    code = (
        "import sys, qcow2lint; heavy = {'numpy', 'yaml', 'typer', 'rich', 'qcow2lint.engine', 'qcow2lint.reader'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_read_is_a_context_manager_that_streams_l2_tables(tmp_path: Path) -> None:
    path = ib.create(tmp_path / "a.qcow2", 64 << 20)
    ib.write(path, 0, 65536, 0xAB)
    with qcow2lint.read(path) as image_file:
        image = image_file.image
        assert isinstance(image, qcow2lint.Image)
        assert image.header.version == 3 and image.header.size == 64 << 20
        assert image.readable and image.problems == ()
        batches = list(image_file.l2_batches())  # needs the file open
        assert sum(len(b.offsets) for b in batches) == 1
        assert np.count_nonzero(batches[0].entries) == 1
    with pytest.raises(OSError):
        os.fstat(image_file.reader.fd if image_file.reader.fd >= 0 else -1)  # closed
    image_file.close()  # closing twice is harmless


def test_read_without_with_and_close(tmp_path: Path) -> None:
    path = ib.create(tmp_path / "a.qcow2", 64 << 20)
    image_file = qcow2lint.read(str(path))
    try:
        assert image_file.image.l1 is not None and len(image_file.image.l1.entries) >= 1
    finally:
        image_file.close()


def test_read_a_broken_image_does_not_raise(tmp_path: Path) -> None:
    path = tmp_path / "junk.qcow2"
    path.write_bytes(b"not a qcow2 image at all" * 10)
    with qcow2lint.read(path) as image_file:
        assert not image_file.image.readable


@pytest.mark.parametrize("kind", ["missing", "directory", "lfs"])
def test_read_and_lint_raise_image_error_for_unreadable_inputs(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "x.qcow2"
    if kind == "directory":
        path.mkdir()
    elif kind == "lfs":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 1\n")
    with pytest.raises(qcow2lint.ImageError) as read_error:
        qcow2lint.read(path)
    with pytest.raises(qcow2lint.ImageError):
        qcow2lint.lint(path)
    if kind == "lfs":
        assert "git lfs pull" in str(read_error.value)


def test_lint_a_clean_and_a_patched_image(tmp_path: Path, base_images: Bases) -> None:
    clean = ib.create(tmp_path / "clean.qcow2", 64 << 20)
    report = qcow2lint.lint(clean)
    assert isinstance(report, qcow2lint.Report)
    assert report.error is None
    assert report.counts()["error"] == 0 and report.counts()["warning"] == 0

    broken = base_images.copy("v3", tmp_path, "broken.qcow2")
    img = ib.Qcow2Image(broken)
    l2_offset = img.l1[PATCH_L1_INDEX] & 0x00FFFFFFFFFFFE00
    img.set_l2(l2_offset, PATCH_L2_INDEX, img.l2_tables[l2_offset][PATCH_L2_INDEX] | 0x2)
    report = qcow2lint.lint(broken)
    hits = [f for f in report.findings if f.rule == "l2-reserved-bits"]
    assert len(hits) == 1 and str(hits[0].severity) == "error"
    assert hits[0].location == f"l2@{l2_offset:#x}[{PATCH_L2_INDEX}]"
    # the same findings the command line reports
    cli = lint_json(broken)["images"][0]["findings"]
    assert [f.to_json() for f in report.findings] == cli


def test_lint_config_none_path_or_object(tmp_path: Path, base_images: Bases, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = base_images.copy("v3", tmp_path, "broken.qcow2")
    img = ib.Qcow2Image(broken)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    monkeypatch.chdir(tmp_path)
    assert "l1-reserved-bits" in {f.rule for f in qcow2lint.lint(broken).findings}

    config_file = tmp_path / "custom.yaml"
    config_file.write_text("rules:\n  l1-reserved-bits: disable\n")
    assert "l1-reserved-bits" not in {f.rule for f in qcow2lint.lint(broken, config=config_file).findings}
    assert "l1-reserved-bits" not in {f.rule for f in qcow2lint.lint(broken, config=str(config_file)).findings}

    from qcow2lint.config import load_config
    from qcow2lint.registry import load_registry

    config = load_config(load_registry(), config_file)
    assert "l1-reserved-bits" not in {f.rule for f in qcow2lint.lint(broken, config=config).findings}

    # None discovers qcow2lint.yaml from the working directory upwards
    (tmp_path / "qcow2lint.yaml").write_text("rules:\n  l1-reserved-bits: {level: info}\n")
    [hit] = [f for f in qcow2lint.lint(broken).findings if f.rule == "l1-reserved-bits"]
    assert str(hit.severity) == "info"

    with pytest.raises(qcow2lint.ConfigError):
        qcow2lint.lint(broken, config=tmp_path / "nope.yaml")


def test_lint_statistics_and_deep(tmp_path: Path) -> None:
    path = ib.create(tmp_path / "a.qcow2", 64 << 20)
    ib.write(path, 0, 65536, 0xAB)
    report = qcow2lint.lint(path, statistics=True, deep=True)
    assert report.stats is not None and report.stats.get("allocated-clusters") == 1


def test_the_readme_demo_via_the_api() -> None:
    report = qcow2lint.lint(REPO_ROOT / "examples" / "demo.qcow2")
    cli = json.loads(
        subprocess.run(
            [sys.executable, "-m", "qcow2lint", "check", "--format", "json", "examples/demo.qcow2"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        ).stdout
    )
    assert [f.to_json() for f in report.findings] == cli["images"][0]["findings"]
    assert report.counts()["error"] == 1
