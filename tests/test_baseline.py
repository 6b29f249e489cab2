"""Baselines: fingerprints (rule + image path + structure path), the
versioned sorted JSON file with counts, and applying it to later runs of
real images made with qemu-img."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import attrs
import imagebuilder as ib
import pytest

from qcow2lint.baseline import (
    BaselineError,
    BaselineFilter,
    fingerprint,
    generate_baseline,
    image_key,
    parse_baseline,
    read_baseline,
)
from qcow2lint.config import load_config
from qcow2lint.engine import ImageReport, lint_path
from qcow2lint.registry import load_registry


def apply_baseline(reports, text, root=None, source="baseline"):
    """What the command line does with --baseline: one filter over every report."""
    accept = BaselineFilter(text, root, source)
    return [accept(report) for report in reports]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean image with one allocated data cluster (so it has an L2 table)."""
    path = tmp_path_factory.mktemp("baseline") / "clean.qcow2"
    ib.create(path, 64 << 20, {"cluster_size": 65536})
    ib.write(path, 0, 65536, 0x11)
    return path


def _l2_reserved(path: Path, index: int = 0) -> None:
    """Set reserved bit 1 in the L2 entry of guest cluster ``index``."""
    img = ib.Qcow2Image(path)
    _, l2_offset, l2_index = img.guest_to_l2(index * img.cluster_size)
    img.set_l2(l2_offset, l2_index, img.l2_tables[l2_offset][l2_index] | 0x2)


@pytest.fixture()
def images(clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two defective images in ``tmp_path`` (the working directory), by relative path."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs").mkdir()
    a, b = Path("imgs/a.qcow2"), Path("imgs/b.qcow2")
    for path in (a, b):
        shutil.copyfile(clean, path)
        ib.Qcow2Image(path).set_header_padding(1, 0x5)
    _l2_reserved(a)
    return [a, b]


def _lint(paths: list[Path] | list[str], registry, tmp_path: Path) -> list[ImageReport]:
    config = load_config(registry, start=tmp_path)
    return [lint_path(p, config, registry) for p in paths]


def _rules(report: ImageReport) -> list[str]:
    return sorted(f.rule for f in report.findings)


def test_the_defective_images_have_findings(images: list[Path], registry, tmp_path: Path) -> None:
    reports = _lint(images, registry, tmp_path)
    assert _rules(reports[0]) == ["header-padding-nonzero", "l2-reserved-bits"]
    assert _rules(reports[1]) == ["header-padding-nonzero"]


def test_round_trip_accepts_every_current_finding(images: list[Path], registry, tmp_path: Path) -> None:
    reports = _lint(images, registry, tmp_path)
    text = generate_baseline(reports)
    after = apply_baseline(_lint(images, registry, tmp_path), text)
    assert [r.path for r in after] == [str(p) for p in images]
    assert all(r.findings == () for r in after)


def test_the_file_is_versioned_sorted_and_names_image_rule_and_structure_path(
    images: list[Path], registry, tmp_path: Path
) -> None:
    text = generate_baseline(_lint(list(reversed(images)), registry, tmp_path))
    document = json.loads(text)
    assert document["tool"] == "qcow2lint" and document["version"] == 1
    entries = document["findings"]
    keys = [(e["image"], e["rule"], e["location"]) for e in entries]
    assert keys == sorted(keys)
    assert ("imgs/a.qcow2", "header-padding-nonzero", "header.padding") in keys
    assert any(k[0] == "imgs/a.qcow2" and k[1] == "l2-reserved-bits" and k[2].startswith("l2@") for k in keys)
    assert all(set(e) == {"image", "rule", "location", "count"} and e["count"] == 1 for e in entries)
    # Same input in another order, same file: it diffs well.
    assert text == generate_baseline(_lint(images, registry, tmp_path))


def test_new_findings_after_the_baseline_are_reported(images: list[Path], registry, tmp_path: Path) -> None:
    text = generate_baseline(_lint(images, registry, tmp_path))
    # A new defect in b, and a changed value of the baselined padding defect in a.
    _l2_reserved(images[1])
    ib.Qcow2Image(images[0]).set_header_padding(1, 0x7)
    reports = _lint(images, registry, tmp_path)
    assert "0x7" in reports[0].findings[0].message or "07" in reports[0].findings[0].message
    after = apply_baseline(reports, text)
    assert after[0].findings == ()  # the message changed, the fingerprint did not
    assert _rules(after[1]) == ["l2-reserved-bits"]


def test_a_finding_elsewhere_in_the_structure_is_new(clean: Path, registry, tmp_path: Path) -> None:
    path = tmp_path / "c.qcow2"
    shutil.copyfile(clean, path)
    _l2_reserved(path)
    text = generate_baseline(_lint([path], registry, tmp_path))
    ib.write(path, 65536, 65536, 0x22)  # allocate guest cluster 1 ...
    _l2_reserved(path, 1)  # ... and plant the same defect in its L2 entry
    after = apply_baseline(_lint([path], registry, tmp_path), text)
    assert [f.location for f in after[0].findings] == [after[0].findings[0].location]
    assert after[0].findings[0].rule == "l2-reserved-bits" and after[0].findings[0].location.endswith("[1]")


def test_counts_let_n_identical_fingerprints_pass_and_no_more(images: list[Path], registry, tmp_path: Path) -> None:
    report = _lint(images[:1], registry, tmp_path)[0]
    twice = attrs.evolve(report, findings=report.findings + report.findings[:1])
    text = generate_baseline([twice])
    counts = {(e["rule"]): e["count"] for e in json.loads(text)["findings"]}
    assert counts[report.findings[0].rule] == 2
    thrice = attrs.evolve(report, findings=report.findings + report.findings[:1] * 2)
    assert apply_baseline([thrice], text)[0].findings == report.findings[:1]
    assert apply_baseline([report], generate_baseline([report]))[0].findings == ()
    assert apply_baseline([twice], generate_baseline([report]))[0].findings == report.findings[:1]


def test_the_image_path_is_normalised(images: list[Path], registry, tmp_path: Path) -> None:
    text = generate_baseline(_lint(images, registry, tmp_path))
    spelled = ["./imgs/a.qcow2", str(tmp_path / "imgs" / "b.qcow2")]
    after = apply_baseline(_lint(spelled, registry, tmp_path), text)
    assert all(r.findings == () for r in after)
    assert image_key("./x/../imgs/a.qcow2") == "imgs/a.qcow2"
    assert image_key(tmp_path / "imgs" / "a.qcow2") == "imgs/a.qcow2"
    assert image_key("/elsewhere/a.qcow2") == "/elsewhere/a.qcow2"
    assert image_key("/r/imgs/a.qcow2", root="/r") == "imgs/a.qcow2"


def test_another_image_is_not_covered(images: list[Path], registry, tmp_path: Path) -> None:
    text = generate_baseline(_lint(images[1:], registry, tmp_path))
    after = apply_baseline(_lint(images, registry, tmp_path), text)
    assert _rules(after[0]) == ["header-padding-nonzero", "l2-reserved-bits"]
    assert after[1].findings == ()


def test_unreadable_images_keep_their_error(tmp_path: Path) -> None:
    broken = ImageReport("gone.qcow2", error="gone.qcow2: no such file")
    text = generate_baseline([broken])
    assert json.loads(text)["findings"] == []
    assert apply_baseline([broken], text) == [broken]


def test_fingerprint_ignores_offset_and_message(images: list[Path], registry, tmp_path: Path) -> None:
    finding = _lint(images[:1], registry, tmp_path)[0].findings[0]
    moved = attrs.evolve(finding, offset=finding.offset + 8, message="something else")
    assert fingerprint("imgs/a.qcow2", finding) == fingerprint("imgs/a.qcow2", moved)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "invalid JSON at line 1"),
        ("{", "invalid JSON"),
        ("[]", "not a qcow2lint baseline"),
        ('{"tool": "ruff", "version": 1, "findings": []}', "not a qcow2lint baseline"),
        ('{"tool": "qcow2lint", "version": 99, "findings": []}', "baseline version 99 is not supported"),
        ('{"tool": "qcow2lint", "findings": []}', "baseline version None"),
        ('{"tool": "qcow2lint", "version": 1, "findings": {}}', '"findings" must be a list'),
        ('{"tool": "qcow2lint", "version": 1, "findings": [3]}', "findings[0] must be an object"),
        (
            '{"tool": "qcow2lint", "version": 1, "findings": [{"image": "a", "rule": "r"}]}',
            "'location' must be a string",
        ),
        (
            '{"tool": "qcow2lint", "version": 1, "findings": [{"image": "a", "rule": "r", "location": "l", "count": 0}]}',
            "'count' must be a whole number >= 1",
        ),
    ],
)
def test_a_malformed_baseline_is_a_one_line_error(text: str, needle: str) -> None:
    with pytest.raises(BaselineError) as error:
        apply_baseline([], text, source="ci/baseline.json")
    message = str(error.value)
    assert message.startswith("ci/baseline.json: ") and "\n" not in message
    assert needle in message


def test_read_baseline_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=r"missing\.json: cannot read the baseline"):
        read_baseline(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe")
    with pytest.raises(BaselineError, match="not UTF-8"):
        read_baseline(tmp_path / "bin.json")
    good = tmp_path / "good.json"
    good.write_text(generate_baseline([]))
    assert parse_baseline(read_baseline(good)) == {}
    with pytest.raises(BaselineError) as error:
        read_baseline(good / "x")
    assert str(error.value).startswith(os.fspath(good / "x") + ": cannot read")
