"""Image text never reaches a report raw (issue 9).

Real qemu-img images get newline, CR, ESC, NUL, BEL, ``::error::``,
``%0A``, a Unicode line separator and a fake summary line planted in every
name field: the backing file name, the backing format and data file name
extensions, the feature name table, bitmap names, snapshot ids and names.
Every report format must then have exactly the lines (or elements) it
should, with the planted text shown escaped.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import imagebuilder as ib
import pytest

import qcow2lint
from qcow2lint.config import Config, RuleSettings
from qcow2lint.registry import load_registry
from qcow2lint.report import github, gitlab, junit, sarif
from qcow2lint.report.dump import build_dump
from qcow2lint.report.jsonreport import render_json
from qcow2lint.report.text import render_text
from qcow2lint.text import escape, label

#: What an attacker would like a terminal or a CI log to see.
EVIL = b"\n\r\x1b[31m\x00\x07::error::%0A\xe2\x80\xa8\na.qcow2: 0 errors"
#: Characters that must never appear raw in any output.
RAW = ("\x1b", "\x00", "\r", "\x07", "\u2028")
FIELDS = ("BF", "DF", "FT", "BN", "BM", "SI", "SN")


def hostile(tag: str, length: int) -> bytes:
    """``length`` bytes: the tag, the evil text, then padding."""
    data = tag.encode() + EVIL
    assert len(data) <= length
    return data + b"x" * (length - len(data))


def _extension(magic: int, data: bytes) -> bytes:
    return struct.pack(">II", magic, len(data)) + data + bytes(-len(data) % 8)


def _feature(kind: int, bit: int, name: bytes) -> bytes:
    return struct.pack(">BB", kind, bit) + name[:46].ljust(46, b"\0")


def _extensions_image(path: Path, with_backing: bool) -> Path:
    """Backing format, data file name and feature table extensions with
    hostile text, and (``with_backing``) a hostile backing file name."""
    ib.create(path, "1M")
    features = b"".join(
        [
            _feature(0, 20, hostile("FT", 46)),  # an unknown incompatible bit QEMU would name
            _feature(2, 5, hostile("FT", 46)),  # an unknown autoclear bit
            _feature(9, 1, hostile("FT", 46)),  # a type that does not exist
        ]
    )
    area = (
        _extension(ib.EXT_BACKING_FORMAT, hostile("BF", 48))
        + _extension(ib.EXT_DATA_FILE, hostile("DF", 48))
        + _extension(ib.EXT_FEATURE_TABLE, features)
        + bytes(8)
    )
    img = ib.Qcow2Image(path)
    img.write_bytes(img.header_length, area)
    name_at = img.header_length + len(area)
    if with_backing:
        name = hostile("BN", 64)
        img.write_bytes(name_at, name)
        img.set_header("backing_file_offset", name_at)
        img.set_header("backing_file_size", len(name))
    img.set_header("incompatible_features", 1 << 20)
    img.set_header("autoclear_features", 1 << 5)
    return path


def _bitmaps_image(path: Path) -> Path:
    """Two bitmaps renamed to the same hostile name, one marked in use."""
    ib.create(path, "1M", {"cluster_size": 4096})
    for name in ("a" * 60, "b" * 60):
        ib.bitmap_add(path, name)
    img = ib.Qcow2Image(path)
    for entry in img.bitmaps:
        img.write_bytes(entry.padding_offset - entry.fields["name_size"], hostile("BM", 60))
    img.set_bitmap_field(0, "flags", img.bitmaps[0].fields["flags"] | 1)
    return path


def _snapshots_image(path: Path) -> Path:
    """Three snapshots: the first two with the same hostile id, the third
    with an empty id and a hostile name."""
    ib.create(path, "1M", {"cluster_size": 4096})
    for name in ("s" * 99, "t" * 99, "u" * 99):
        ib.snapshot_create(path, name)
    img = ib.Qcow2Image(path)
    for index, entry in enumerate(img.snapshots):
        text_at = entry.offset + ib.SNAPSHOT_FIXED + entry.fields["extra_data_size"]
        total = entry.fields["id_str_size"] + entry.fields["name_size"]  # 1 + 99 bytes
        id_size = 50 if index < 2 else 0
        img.set_snapshot_field(index, "id_str_size", id_size)
        img.set_snapshot_field(index, "name_size", total - id_size)
        text = (hostile("SI", id_size) if id_size else b"") + hostile("SN", total - id_size)
        img.write_bytes(text_at, text)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The hostile images, each a real qemu-img image with patched names."""
    root = tmp_path_factory.mktemp("hostile")
    return [
        _extensions_image(root / "ext.qcow2", with_backing=True),
        _extensions_image(root / "ext-nobacking.qcow2", with_backing=False),
        _bitmaps_image(root / "bitmaps.qcow2"),
        _snapshots_image(root / "snapshots.qcow2"),
    ]


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return load_registry()


@pytest.fixture(scope="module")
def reports(images: list[Path], registry) -> list:  # type: ignore[no-untyped-def]
    """Every image linted with every rule enabled."""
    config = Config({rule.name: RuleSettings(True, rule.severity, rule.options) for rule in registry})
    return [qcow2lint.lint(path, config, statistics=True) for path in images]


def _assert_no_raw(output: str) -> None:
    for char in RAW:
        assert char not in output, f"raw {char!r} in the output"
    assert not any(line.startswith("a.qcow2") for line in output.splitlines())


def test_every_name_field_reaches_a_finding_escaped(reports: list) -> None:
    """The planted text is in the findings, escaped, for each field that a
    rule prints (the backing file name is printed by none)."""
    texts = [f"{f.location} {f.message}" for report in reports for f in report.findings]
    escaped = label(EVIL)
    assert escaped.startswith("\\n\\r\\x1b[31m\\x00\\x07::error::%0A\\xe2\\x80\\xa8\\na.qcow2")
    for tag in ("BF", "DF", "FT", "BM", "SI", "SN"):
        assert any(tag + escaped[:40] in text for text in texts), f"no finding shows the {tag} field"
    for text in texts:
        assert escape(text) == text, f"a finding carries raw control characters: {text!r}"


def test_text_report_has_one_line_per_finding(reports: list) -> None:
    for report in reports:
        assert report.findings
        output = render_text(report)
        _assert_no_raw(output)
        lines = output.splitlines()
        assert len(lines) == len(report.findings) + 1
        assert all(line.startswith(f"{report.path}:0x") for line in lines[:-1])
        assert lines[-1].startswith(f"{report.path}: ") and " error" in lines[-1]
        # --statistics adds one line per rule, the figures header and one per figure
        rules = {(f.code, f.rule) for f in report.findings}
        stats_lines = render_text(report, statistics=True).splitlines()
        assert len(stats_lines) == len(report.findings) + 1 + len(rules) + 1 + len(report.stats)


def test_github_output_is_one_command_per_finding(reports: list) -> None:
    output = github.render_github(reports)
    _assert_no_raw(output)
    lines = output.splitlines()
    assert len(lines) == sum(len(r.findings) for r in reports)
    assert all(line.startswith(("::error file=", "::warning file=", "::notice file=")) for line in lines)
    # a property never holds a raw ':' or ',' (it would end the properties)
    assert all(line.split(" ", 1)[1].split("::", 1)[0].count(",") == 1 for line in lines)
    summary = github.github_step_summary(reports)
    _assert_no_raw(summary)


def test_json_formats_stay_valid(reports: list, registry) -> None:  # type: ignore[no-untyped-def]
    total = sum(len(r.findings) for r in reports)
    document = json.loads(render_json(reports))
    assert sum(len(image["findings"]) for image in document["images"]) == total
    log = json.loads(sarif.render_sarif(reports, registry))
    assert len(log["runs"][0]["results"]) == total
    log = json.loads(sarif.render_sarif(reports, registry, github=True))
    assert len(log["runs"][0]["results"]) == total
    issues = json.loads(gitlab.render_gitlab(reports))
    assert len(issues) == total
    for item in [*document["images"], *issues]:
        _assert_no_raw(json.dumps(item, ensure_ascii=False))


def test_junit_lists_one_line_per_failing_finding(reports: list, registry) -> None:  # type: ignore[no-untyped-def]
    output = junit.render_junit(reports, registry)
    _assert_no_raw(output)
    root = ET.fromstring(output.encode())
    lines = [line for failure in root.iter("failure") for line in (failure.text or "").splitlines()]
    lines += [line for out in root.iter("system-out") for line in (out.text or "").splitlines()]
    assert len(lines) == sum(len(r.findings) for r in reports)


def test_dump_escapes_names(images: list[Path]) -> None:
    """The dump shows bitmap names and extension data escaped (qcow2.py
    prints them raw; see docs/dump.md), and the JSON dump stays valid."""
    dump = build_dump(str(images[2]))
    _assert_no_raw(dump.text)
    assert dump.text.count("Bitmap name") == 2
    assert f"Bitmap name               BM{label(EVIL)[:30]}" in dump.text
    parsed = build_dump(str(images[2]), as_json=True).text.split("\n\n", 1)
    names = [entry["name"] for entry in json.loads(parsed[1])[0]["data"]["bitmap_directory"]]
    # qcow2.py -j would die on the non-ASCII bytes; the JSON escapes the rest
    assert names == [hostile("BM", 60).decode("ascii", "backslashreplace")] * 2


@pytest.mark.parametrize("fmt", ["text", "github"])
def test_cli_output_lines(images: list[Path], reports: list, fmt: str) -> None:
    """The command line prints the same number of lines as the library's
    findings (plus the summary lines of the text report)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "qcow2lint",
            "check",
            "--format",
            fmt,
            "-c",
            str(_all_rules_config(images[0].parent)),
            *map(str, images),
        ],
        capture_output=True,
        text=True,
        errors="surrogateescape",
    )
    assert proc.returncode == 1, proc.stderr
    _assert_no_raw(proc.stdout)
    total = sum(len(r.findings) for r in reports)
    lines = proc.stdout.splitlines()
    # text: a summary line per image, and (issue 11) one for the run
    assert len(lines) == total + (len(images) + 1 if fmt == "text" else 0)
    if fmt == "github":
        assert all(line.startswith("::") for line in lines)


def _all_rules_config(directory: Path) -> Path:
    path = directory / "all-rules.yaml"
    path.write_text("extends: pedantic\n")  # every rule, the off-by-default ones too
    return path
