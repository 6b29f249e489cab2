"""What the differential fuzzer and real images showed: the rules that close
the holes, and the fixes.

* ext-end-marker-length, backing-format-unknown, backing-protocol-unknown,
  data-file-missing: a failing case (qemu-img check refuses the image with
  the documented message, and the rule reports it at error), a passing
  case (QEMU opens the image, the rule is quiet) and a disabled-in-config
  case; the two backing rules also under the `untrusted` preset;
* refcount-beyond-eof on a 64-bit refcount of 2^64 - 256 (it crashed);
* a refcount table whose entries all name one refcount block: the block is
  decoded once (counted, not timed);
* a qcow version 1 file has one finding, header-bad-version;
* header-v2-has-v3-bytes is off by default and on in `pedantic`.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import imagebuilder as ib
import numpy as np
import pytest
import qemu_hole_builders as holes
from harness import lint

import qcow2lint
import qcow2lint.passes.stored as stored_module
from qcow2lint.passes.base import MAX_EVENTS
from qcow2lint.reader import read_image
from qcow2lint.records import RefcountBlock


def message_pattern(template: str) -> re.Pattern[str]:
    """A documented QEMU message as a pattern: N a number, NAME a name."""
    pattern = re.sub(r"\bNAME\b", "[^']*", re.escape(template))
    return re.compile(re.sub(r"\bN\b", "[0-9a-fA-Fx]+", pattern))


def _run(argv: list[str | os.PathLike[str]], cwd: Path | None) -> subprocess.CompletedProcess[str]:
    """A QEMU tool run in ``cwd`` (QEMU resolves a relative data file name against it)."""
    return subprocess.run(
        [str(arg) for arg in argv],
        capture_output=True,
        text=True,
        errors="replace",
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        check=False,
    )


def qemu_refuses(path: Path, message: str, cwd: Path | None = None) -> None:
    """``qemu-img check`` cannot open ``path`` and says ``message``."""
    proc = _run([ib.QEMU_IMG, "check", path], cwd)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert message_pattern(message).search(proc.stderr), proc.stderr


def qemu_opens(path: Path, cwd: Path | None = None) -> None:
    """qemu-io opens ``path`` read-only."""
    proc = _run([ib.QEMU_IO, "-r", "-c", "quit", path], cwd)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def errors(path: Path, rule: str, **kwargs: object) -> list[qcow2lint.findings.Finding]:
    """The rule's findings with a preset (default: the default preset), asserted errors."""
    kwargs.setdefault("preset", "default")
    found = [f for f in qcow2lint.lint(path, **kwargs).findings if f.rule == rule]  # type: ignore[arg-type]
    assert all(str(f.severity) == "error" for f in found), found
    return found


# --- ext-end-marker-length ------------------------------------------------------


def test_an_end_marker_whose_length_leaves_the_area_is_an_error(tmp_path: Path) -> None:
    path, _ = holes.end_marker_length(0x10000)(tmp_path)
    qemu_refuses(path, "Header extension too large")
    [finding] = errors(path, "ext-end-marker-length")
    assert finding.offset == holes.end_marker_offset(path) + 4
    assert "length 65536" in finding.message and "past the end of the extension area at 0x10000" in finding.message
    assert "ext-end-marker-length" not in lint(path, "rules:\n  ext-end-marker-length: disable\n").fired


def test_an_end_marker_with_a_length_inside_the_area_opens(tmp_path: Path) -> None:
    # QEMU compares the length with what is left of the area, then stops at the marker
    path, _ = holes.end_marker_length(16)(tmp_path)
    qemu_opens(path)
    assert errors(path, "ext-end-marker-length") == []
    end = holes.end_marker_offset(path) + 8
    path, _ = holes.end_marker_length(0x10000 - end)(tmp_path)  # exactly to the end of cluster 0
    qemu_opens(path)
    assert errors(path, "ext-end-marker-length") == []
    path, _ = holes.end_marker_length(0x10000 - end + 1)(tmp_path)
    qemu_refuses(path, "Header extension too large")
    assert len(errors(path, "ext-end-marker-length")) == 1


# --- backing-format-unknown / backing-protocol-unknown -------------------------


@pytest.mark.parametrize("name", [b"qCow2", b"\xff\x01ow2", b"qcoW2"], ids=["qCow2", "bytes", "qcoW2"])
@pytest.mark.parametrize("preset", ["default", "untrusted"])
def test_a_backing_format_qemu_has_no_driver_for_is_an_error(tmp_path: Path, name: bytes, preset: str) -> None:
    path, _ = holes.backing_format(name)(tmp_path)
    qemu_refuses(path, "Could not open backing file: Unknown driver 'NAME'")
    [finding] = errors(path, "backing-format-unknown", preset=preset)
    assert "is no QEMU block driver" in finding.message


@pytest.mark.parametrize("fmt", ["qcow2", "raw", "file"])
def test_a_backing_format_that_is_a_driver_passes(tmp_path: Path, fmt: str) -> None:
    path = holes.overlay(tmp_path, f"{fmt}.qcow2", "base.qcow2", fmt)
    qemu_opens(path)
    assert errors(path, "backing-format-unknown") == []
    assert errors(path, "backing-format-unknown", preset="untrusted") == []


def test_backing_format_unknown_can_be_disabled(tmp_path: Path) -> None:
    path, _ = holes.backing_format(b"qCow2")(tmp_path)
    assert "backing-format-unknown" not in lint(path, "rules:\n  backing-format-unknown: disable\n").fired


@pytest.mark.parametrize("name", ["base.qcow:", "disk:1.qcow2", "QCOW2:base.qcow2", "File:base.qcow2"])
@pytest.mark.parametrize("preset", ["default", "untrusted"])
def test_a_backing_name_with_an_unknown_protocol_is_an_error(tmp_path: Path, name: str, preset: str) -> None:
    path, _ = holes.backing_name(name)(tmp_path)
    qemu_refuses(path, "Could not open backing file: Unknown protocol 'NAME'")
    [finding] = errors(path, "backing-protocol-unknown", preset=preset)
    protocol = name.split(":")[0]
    assert f"the protocol '{protocol}'" in finding.message


@pytest.mark.parametrize("name", ["base.qcow2", "./base.qcow2", "file:base.qcow2", "nbd://localhost:1/x"])
def test_a_plain_name_or_a_known_protocol_passes(tmp_path: Path, name: str) -> None:
    path, _ = holes.backing_name(name)(tmp_path)
    assert errors(path, "backing-protocol-unknown") == []
    if not name.startswith("nbd"):
        qemu_opens(path, cwd=tmp_path)


def test_a_colon_after_a_slash_is_a_file_name(tmp_path: Path) -> None:
    # "./base:1.qcow2": the '/' comes first, so QEMU opens a file
    os.rename(holes.overlay(tmp_path, "x.qcow2", "base.qcow2"), tmp_path / "unused.qcow2")
    os.rename(tmp_path / "base.qcow2", tmp_path / "base:1.qcow2")
    path = holes.overlay(tmp_path, "colon.qcow2", "./base:1.qcow2")
    qemu_opens(path, cwd=tmp_path)
    assert errors(path, "backing-protocol-unknown") == []


def test_backing_protocol_unknown_can_be_disabled(tmp_path: Path) -> None:
    path, _ = holes.backing_name("base.qcow:")(tmp_path)
    assert "backing-protocol-unknown" not in lint(path, "rules:\n  backing-protocol-unknown: disable\n").fired


# --- data-file-missing ---------------------------------------------------------


def test_a_missing_data_file_is_an_error(tmp_path: Path) -> None:
    path, _ = holes.data_file_missing(tmp_path)
    qemu_refuses(path, "Could not open 'NAME': No such file or directory")
    [finding] = errors(path, "data-file-missing")
    assert str(tmp_path / "gone.raw") in finding.message
    # qemu-img info (no I/O) still opens it
    assert ib.run_tool([ib.QEMU_IMG, "info", path], check=False).returncode == 0


def test_a_data_file_name_that_is_a_directory_is_an_error(tmp_path: Path) -> None:
    path, _ = holes.data_file_directory(tmp_path)
    qemu_refuses(path, "'file' driver requires 'NAME' to be a regular file")
    [finding] = errors(path, "data-file-missing")
    assert "is a directory" in finding.message


def test_an_empty_data_file_name_is_an_error(tmp_path: Path) -> None:
    path, _ = holes.data_file_name_empty(tmp_path)
    qemu_refuses(path, "The 'file' block driver requires a file name")
    [finding] = errors(path, "data-file-missing")
    assert "the external data file name is empty" in finding.message


def test_a_present_data_file_passes(tmp_path: Path) -> None:
    path = ib.create(tmp_path / "with-data.qcow2", "1M", {"data_file": str(tmp_path / "data.raw")})
    qemu_opens(path)
    assert errors(path, "data-file-missing") == []


def test_a_relative_data_file_name_resolves_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As QEMU 7.2 resolves it: from the image's directory the data file is
    there, from its parent it is not (for QEMU and for the rule alike)."""
    images = tmp_path / "images"
    images.mkdir()
    monkeypatch.chdir(images)
    ib.create(Path("rel.qcow2"), "1M", {"data_file": "data.raw"})
    assert (images / "data.raw").exists()
    qemu_opens(Path("rel.qcow2"), cwd=images)
    assert errors(Path("rel.qcow2"), "data-file-missing") == []
    monkeypatch.chdir(tmp_path)
    qemu_refuses(Path("images/rel.qcow2"), "Could not open 'NAME': No such file or directory", cwd=tmp_path)
    [finding] = errors(Path("images/rel.qcow2"), "data-file-missing")
    assert str(tmp_path / "data.raw") in finding.message


def test_data_file_missing_is_off_under_untrusted_with_check_exists_false_and_when_disabled(tmp_path: Path) -> None:
    path, _ = holes.data_file_missing(tmp_path)
    assert errors(path, "data-file-missing", preset="untrusted") == []
    assert "data-file-missing" not in lint(path, "rules:\n  data-file-missing: {check-exists: false}\n").fired
    assert "data-file-missing" not in lint(path, "rules:\n  data-file-missing: disable\n").fired


# --- refcount-beyond-eof with 64-bit refcounts ------------------------------------


def test_a_huge_64_bit_refcount_past_the_end_of_the_file_is_reported(tmp_path: Path) -> None:
    path = ib.create(tmp_path / "rc64.qcow2", "1M", {"refcount_bits": 64, "cluster_size": 4096})
    image = ib.Qcow2Image(path)
    refblock = image.read_u64_table(image.header["refcount_table_offset"], 1)[0]
    image.write_int(refblock + 8 * 200, "Q", (1 << 64) - 256)
    report = qcow2lint.lint(path, preset="default")
    assert not [f for f in report.findings if f.rule == "internal-error"], report.findings
    [finding] = [f for f in report.findings if f.rule == "refcount-beyond-eof"]
    assert "cluster 200 " in finding.message and f"refcount {(1 << 64) - 256}" in finding.message


# --- a refcount table whose entries all name one block -----------------------------


def test_a_refcount_block_named_by_every_entry_is_decoded_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every one of the 8192 refcount table entries names the one refcount
    block: its refcounts are decoded once, and each entry past the file's
    clusters only counts them."""
    path = ib.create(tmp_path / "shared.qcow2", "4M")
    ib.run_tool([ib.QEMU_IO, "-c", "write -P 1 0 192k", path])
    image = ib.Qcow2Image(path)
    table = image.header["refcount_table_offset"]
    refblock = image.read_u64_table(table, 1)[0]
    entries = image.header["refcount_table_clusters"] * image.cluster_size // 8
    image.write_bytes(table, refblock.to_bytes(8, "big") * entries)
    used = image.file_size // image.cluster_size  # clusters with refcount 1
    decodes: list[int] = []

    class CountingBlock(RefcountBlock):
        def refcounts(self) -> np.ndarray:
            decodes.append(self.file_offset)
            return super().refcounts()

    monkeypatch.setattr(stored_module, "RefcountBlock", CountingBlock)
    with read_image(path) as image_file:
        stored = stored_module.read_stored_refcounts(image_file)
    assert decodes == [refblock]
    assert stored is not None
    assert stored.beyond_count == used * (entries - 1)  # entries 1.. repeat the block's refcounts past the file
    assert len(stored.beyond) == MAX_EVENTS and list(stored.beyond) == sorted(stored.beyond)
    per_block = image.cluster_size * 8 // 16
    assert stored.beyond[0] == (per_block, 1)  # entry 1's first cluster
    report = qcow2lint.lint(path, preset="default")
    assert {"refcount-beyond-eof", "refblock-refcount-not-one"} <= {f.rule for f in report.findings}
    assert not [f for f in report.findings if f.rule == "internal-error"]


# --- real images -------------------------------------------------------------------


def test_a_qcow_version_1_file_has_one_finding_the_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.qcow"
    ib.run_tool([ib.QEMU_IMG, "create", "-q", "-f", "qcow", path, "1M"])
    ib.run_tool([ib.QEMU_IO, "-f", "qcow", "-c", "write -P 1 0 8k", path])
    proc = ib.run_tool([ib.QEMU_IO, "-r", "-f", "qcow2", "-c", "quit", path], check=False)
    assert "Unsupported qcow2 version 1" in proc.stderr
    for preset in ("default", "pedantic"):
        report = qcow2lint.lint(path, preset=preset)
        assert [f.rule for f in report.findings] == ["header-bad-version"], report.findings


def test_header_v2_has_v3_bytes_is_pedantic_only(tmp_path: Path) -> None:
    """A v2 header followed by the v3 fields QEMU of around 2013 wrote there
    (refcount_order 4, header_length 104): QEMU opens it clean."""
    path = ib.create(tmp_path / "old-v2.qcow2", "1M", {"compat": "0.10"})
    image = ib.Qcow2Image(path)
    image.write_int(96, "I", 4)
    image.write_int(100, "I", 104)
    assert ib.qemu_check(path).returncode == 0
    assert "header-v2-has-v3-bytes" not in {f.rule for f in qcow2lint.lint(path, preset="default").findings}
    found = [f for f in qcow2lint.lint(path, preset="pedantic").findings if f.rule == "header-v2-has-v3-bytes"]
    assert len(found) == 1 and re.search(r"refcount_order 4, header_length 104", found[0].message)
