"""The command line contract: exit codes, bad inputs, bad configs, output
formats, and that qcow2lint never writes to an image.

Exit codes: 0 = nothing at/above the fail level, 1 = findings at/above it,
2 = usage error, bad config, or input that cannot be read at all (then one
line on stderr). Never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import imagebuilder as ib
import pytest
from baseimages import PATCH_L1_INDEX
from harness import (
    REPO_ROOT,
    Bases,
    assert_no_traceback,
    assert_one_line_error,
    format_findings,
    lint_json,
    rules_fired,
    run_cli,
    write_config,
)
from rows_basic import REQUIRED_RULES, ROWS

SEVERITY_OF = {row.rule: row.severity for row in ROWS}


# ---------------------------------------------------------------------------
# basic commands
# ---------------------------------------------------------------------------


def test_help() -> None:
    """``--help`` works and names the subcommands."""
    result = run_cli("--help")
    assert_no_traceback(result)
    assert result.returncode == 0
    for command in ("check", "dump", "rules"):
        assert command in result.stdout


PLAIN_ENTRY = "import sys; sys.argv = ['qcow2lint', *sys.argv[1:]]; from qcow2lint.entry import main; main()"


def test_the_console_entry_point_writes_whole_reports(tmp_path: Path) -> None:
    """The console entry point ends the run without a final garbage
    collection (gc.freeze at exit): every report and stream is whole."""
    demo = REPO_ROOT / "examples" / "demo.qcow2"
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_ENTRY, "check", "--format", "json", "--output-file", str(report), str(demo)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    assert len(json.loads(report.read_text())["images"][0]["findings"]) == 3
    plain = subprocess.run([sys.executable, "-c", PLAIN_ENTRY, "check", str(demo)], capture_output=True, text=True)
    assert plain.stdout.endswith("demo.qcow2: 1 error, 2 warnings, 0 info\n")


def test_rules_lists_every_rule() -> None:
    """``qcow2lint rules`` lists each rule with its code and default severity."""
    result = run_cli("rules")
    assert_no_traceback(result)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    for rule in sorted(REQUIRED_RULES):
        matching = [line for line in lines if re.search(rf"(?<![\w-]){re.escape(rule)}(?![\w-])", line)]
        assert len(matching) == 1, f"{rule}: {matching}"
        assert re.search(rf"\b{SEVERITY_OF[rule]}\b", matching[0]), matching[0]


def test_clean_image_exit_0(base_images: Bases) -> None:
    """A clean image: exit 0 in text and JSON."""
    path = base_images.path("v3")
    result = run_cli("check", path)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert lint_json(path)["_returncode"] == 0


def test_error_exit_1(base_images: Bases, tmp_path: Path) -> None:
    """An image with an error finding: exit 1."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    result = run_cli("check", path)
    assert_no_traceback(result)
    assert result.returncode == 1


@pytest.mark.parametrize(
    "args",
    [
        ["check"],
        ["check", "--bogus-option", "IMG"],
        ["check", "--format", "xml", "IMG"],
        ["check", "--fail-level", "fatal", "IMG"],
        ["no-such-command"],
    ],
    ids=["no-image", "unknown-option", "bad-format", "bad-fail-level", "unknown-command"],
)
def test_usage_errors_exit_2(args: list[str], base_images: Bases) -> None:
    """Usage errors exit 2 without a traceback."""
    argv = [str(base_images.path("v3")) if a == "IMG" else a for a in args]
    result = run_cli(*argv)
    assert_no_traceback(result)
    assert result.returncode == 2, result.stdout + result.stderr


# ---------------------------------------------------------------------------
# inputs that cannot be read at all -> 2, one line
# ---------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist."""
    missing = tmp_path / "missing.qcow2"
    result = run_cli("check", missing)
    assert_one_line_error(result)
    assert "missing.qcow2" in result.stderr


def test_directory(tmp_path: Path) -> None:
    """A directory instead of a file."""
    result = run_cli("check", tmp_path)
    assert_one_line_error(result)
    assert tmp_path.name in result.stderr


def test_unreadable_file(base_images: Bases, tmp_path: Path) -> None:
    """chmod 000 (run without CAP_DAC_OVERRIDE so it binds for root too)."""
    path = base_images.copy("v3", tmp_path)
    path.chmod(0)
    try:
        result = run_cli("check", path, unprivileged=True)
    finally:
        path.chmod(0o644)
    assert_one_line_error(result)
    assert path.name in result.stderr


def test_missing_file_among_good_ones(base_images: Bases, tmp_path: Path) -> None:
    """One unreadable input makes the run exit 2 (one line), even beside a good image."""
    result = run_cli("check", base_images.path("v3"), tmp_path / "absent.qcow2")
    assert_no_traceback(result)
    assert result.returncode == 2
    assert "absent.qcow2" in result.stderr


# ---------------------------------------------------------------------------
# readable but not (whole) qcow2 -> findings, exit 1
# ---------------------------------------------------------------------------


def _expect_findings(path: Path, allowed: set[str]) -> dict[str, list[dict]]:
    """Lint ``path``: exit 1, and at least one error finding of an ``allowed`` rule."""
    report = lint_json(path)
    fired = rules_fired(report)
    assert report["_returncode"] == 1, format_findings(report["images"][0]["findings"])
    hits = [f for rule in allowed for f in fired.get(rule, []) if f["severity"] == "error"]
    assert hits, f"none of {allowed} fired:\n{format_findings(report['images'][0]['findings'])}"
    text = run_cli("check", path)
    assert_no_traceback(text)
    assert text.returncode == 1
    return fired


def test_empty_file(tmp_path: Path) -> None:
    """An empty file is a header-file-too-short finding."""
    path = tmp_path / "empty.qcow2"
    path.write_bytes(b"")
    _expect_findings(path, {"header-file-too-short"})


def test_50_byte_qcow2_prefix(base_images: Bases, tmp_path: Path) -> None:
    """The first 50 bytes of a real image (good magic): too short."""
    path = tmp_path / "short.qcow2"
    path.write_bytes(base_images.path("v3").read_bytes()[:50])
    _expect_findings(path, {"header-file-too-short"})


def test_50_byte_garbage(tmp_path: Path) -> None:
    """50 bytes that are not qcow2 at all: bad magic or too short."""
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(50)))
    _expect_findings(path, {"header-file-too-short", "header-bad-magic"})


def test_text_file(tmp_path: Path) -> None:
    """1 MiB of text is not qcow2: header-bad-magic."""
    path = tmp_path / "text.txt"
    line = "lorem ipsum dolor sit amet " * 40 + "\n"
    path.write_text(line * ((1 << 20) // len(line) + 1))
    assert path.stat().st_size > 1_000_000
    _expect_findings(path, {"header-bad-magic"})


@pytest.mark.parametrize("cut", ["100-bytes", "one-cluster", "half"])
def test_truncated_qcow2(cut: str, base_images: Bases, tmp_path: Path) -> None:
    """A truncated real image: qemu-img check sees damage, so must qcow2lint (exit 1)."""
    path = base_images.copy("v3", tmp_path)
    size = path.stat().st_size
    length = {"100-bytes": 100, "one-cluster": 65536, "half": size // 2}[cut]
    ib.Qcow2Image(path).truncate(length)
    assert ib.qemu_check(path).returncode != 0, "the truncation should damage the image"
    report = lint_json(path)
    errors = [f for f in report["images"][0]["findings"] if f["severity"] == "error"]
    assert errors, format_findings(report["images"][0]["findings"])
    assert report["_returncode"] == 1


# ---------------------------------------------------------------------------
# output formats
# ---------------------------------------------------------------------------


def test_json_shape(base_images: Bases, tmp_path: Path) -> None:
    """JSON: one object, images in argument order, findings with the contract's keys and types."""
    clean = base_images.path("v3")
    broken = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(broken)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    report = lint_json([clean, broken])
    assert report["_returncode"] == 1
    assert [Path(i["path"]).name for i in report["images"]] == [clean.name, broken.name]
    assert report["images"][1]["findings"], "the broken image has findings"
    for image in report["images"]:
        for f in image["findings"]:
            assert isinstance(f["rule"], str) and f["rule"]
            assert isinstance(f["code"], str) and f["code"]
            assert f["severity"] in ("error", "warning", "info")
            assert isinstance(f["offset"], int) and not isinstance(f["offset"], bool)
            assert isinstance(f["location"], str)
            assert isinstance(f["message"], str) and f["message"]


def test_text_format(base_images: Bases, tmp_path: Path) -> None:
    """Text: ``IMAGE:0xOFFSET: CODE name severity [location] message`` per finding,
    then a summary line per image; same findings as JSON."""
    path = base_images.copy("v3", tmp_path)
    img = ib.Qcow2Image(path)
    offset = img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    report = lint_json(path)
    result = run_cli("check", "--format", "text", path)
    assert_no_traceback(result)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    finding_re = re.compile(
        rf"^{re.escape(str(path))}:0x[0-9a-fA-F]+: \S+ [a-z0-9-]+ (error|warning|info) \[[^\]]*(\][^\]]*)*\] .+$"
    )
    finding_lines = [line for line in lines if line.startswith(f"{path}:0x")]
    assert len(finding_lines) == len(report["images"][0]["findings"]), result.stdout
    for line in finding_lines:
        assert finding_re.match(line), line
    target = [line for line in finding_lines if " l1-reserved-bits " in line]
    assert len(target) == 1, result.stdout
    assert re.match(
        rf"^{re.escape(str(path))}:0x0*{offset:x}: \S+ l1-reserved-bits error \[l1\[{PATCH_L1_INDEX}\]\] ",
        target[0],
        re.IGNORECASE,
    ), target[0]
    summaries = [line for line in lines if line.strip() and line not in finding_lines]
    assert summaries, f"no summary line:\n{result.stdout}"


def test_text_format_summary_per_image(base_images: Bases, tmp_path: Path) -> None:
    """Two images in one text run: each gets its own summary line."""
    clean = base_images.copy("v3", tmp_path, "clean.qcow2")
    broken = base_images.copy("v3", tmp_path, "broken.qcow2")
    img = ib.Qcow2Image(broken)
    img.set_l1(PATCH_L1_INDEX, img.l1[PATCH_L1_INDEX] | 0x100)
    result = run_cli("check", clean, broken)
    assert_no_traceback(result)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    for path in (clean, broken):
        summary = [line for line in lines if str(path) in line and not line.startswith(f"{path}:0x")]
        assert len(summary) == 1, f"{path.name}: {summary}\n{result.stdout}"
    assert not any(line.startswith(f"{clean}:0x") for line in lines if "error" in line), result.stdout


def test_check_with_dump(base_images: Bases) -> None:
    """``check --dump`` also prints the standard header dump."""
    result = run_cli("check", "--dump", base_images.path("v3"))
    assert_no_traceback(result)
    assert result.returncode == 0
    assert f"{'magic':<25} 0x514649fb" in result.stdout.splitlines()


# ---------------------------------------------------------------------------
# configuration errors -> 2, one line
# ---------------------------------------------------------------------------

BAD_CONFIGS = {
    "unknown-rule": ("rules:\n  l1-reserved-bit: disable\n", ["l1-reserved-bit", "l1-reserved-bits"]),
    "unknown-option": ("max-finding-per-rule: 5\n", ["max-finding-per-rule"]),
    "unknown-rule-option": ("rules:\n  l1-reserved-bits:\n    levle: warning\n", ["levle"]),
    "wrong-type": ("max-findings-per-rule: many\n", ["max-findings-per-rule"]),
    "negative-cap": ("max-findings-per-rule: -3\n", ["max-findings-per-rule"]),
    "bad-level": ("rules:\n  l1-reserved-bits:\n    level: fatal\n", ["fatal"]),
    "rules-not-mapping": ("rules: [l1-reserved-bits]\n", ["rules"]),
    "bad-yaml": ("rules: [unclosed\n  - x: {\n", []),
    "unknown-extends": ("extends: nonexistent-preset\n", ["nonexistent-preset"]),
    "not-a-mapping": ("- just\n- a list\n", []),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_bad_config(name: str, base_images: Bases, tmp_path: Path) -> None:
    """A bad config exits 2 with one stderr line naming the file (and the culprit)."""
    text, must_mention = BAD_CONFIGS[name]
    config = write_config(tmp_path, text, name=f"bad-{name}.yaml")
    result = run_cli("check", "--config", config, base_images.path("v3"))
    assert_one_line_error(result)
    assert config.name in result.stderr, result.stderr
    for word in must_mention:
        assert word in result.stderr, result.stderr


def test_unknown_rule_suggests_close_match(base_images: Bases, tmp_path: Path) -> None:
    """``l1-reserved-bit`` -> the message suggests ``l1-reserved-bits``."""
    config = write_config(tmp_path, "rules:\n  l1-reserved-bit: disable\n")
    result = run_cli("check", "--config", config, base_images.path("v3"))
    assert_one_line_error(result)
    assert re.search(r"l1-reserved-bit\b(?!s)", result.stderr), result.stderr
    assert "l1-reserved-bits" in result.stderr, result.stderr


def test_missing_config_file(base_images: Bases, tmp_path: Path) -> None:
    """``--config`` naming a file that does not exist."""
    result = run_cli("check", "--config", tmp_path / "nope.yaml", base_images.path("v3"))
    assert_one_line_error(result)
    assert "nope.yaml" in result.stderr


@pytest.mark.parametrize("preset", ["default", "strict"])
def test_extends_presets(preset: str, base_images: Bases, tmp_path: Path) -> None:
    """``extends: default|strict`` are valid configs."""
    config = write_config(tmp_path, f"extends: {preset}\n")
    result = run_cli("check", "--config", config, base_images.path("v3"))
    assert_no_traceback(result)
    assert result.returncode in (0, 1), result.stderr
    if preset == "default":
        assert result.returncode == 0


# ---------------------------------------------------------------------------
# never writes to an image
# ---------------------------------------------------------------------------


def _fingerprint(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mtime_ns, st.st_size


@pytest.mark.parametrize("base", ["v3", "bitmaps", "snapshot"])
def test_read_only_image_is_linted_and_unchanged(base: str, base_images: Bases, tmp_path: Path) -> None:
    """A 0444 image (binding even for root) lints normally and is byte-for-byte unchanged."""
    path = base_images.copy(base, tmp_path)
    img = ib.Qcow2Image(path)
    # a defect too, so the run takes the reporting path as well
    img.set_header("autoclear_features", img.header["autoclear_features"] | 1 << 9)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    path.chmod(0o444)
    before = _fingerprint(path)
    for fmt in ("text", "json"):
        result = run_cli("check", "--format", fmt, path, unprivileged=True)
        assert_no_traceback(result)
        assert result.returncode in (0, 1), result.stderr
        if fmt == "json":
            fired = rules_fired(json.loads(result.stdout))
            assert "autoclear-unknown-bits" in fired
    result = run_cli("dump", path, unprivileged=True)
    assert result.returncode == 0, result.stderr
    assert _fingerprint(path) == before
