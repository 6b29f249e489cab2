"""The CI report formats (SARIF, SARIF for GitHub, GitHub workflow commands,
GitLab Code Quality, JUnit), rendered in-process from one engine run over
real images and checked by their consumers' schema or parser:

* SARIF against the vendored SARIF 2.1.0 JSON schema (tests/data) and, when
  npm is available, by Microsoft's SARIF Multitool (``validate``, rule kinds
  ``Sarif`` and ``Sarif;Gh``);
* JUnit with xml.etree;
* GitHub workflow commands with a parser of the command syntax written here
  from GitHub's documentation;
* GitLab Code Quality for its required keys and unique fingerprints.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import imagebuilder as ib
import pytest
from baseimages import PATCH_GUEST_OFFSET
from harness import TESTS_DIR, npm_host, require_host

from qcow2lint.config import load_config
from qcow2lint.engine import ImageReport, lint_path
from qcow2lint.findings import Finding, Severity
from qcow2lint.registry import Registry, load_registry
from qcow2lint.report.github import github_step_summary, render_github
from qcow2lint.report.gitlab import render_gitlab
from qcow2lint.report.junit import render_junit
from qcow2lint.report.sarif import FINGERPRINT_KEY, render_sarif

SCHEMA_PATH = TESTS_DIR / "data" / "sarif-schema-2.1.0.json"
CLEAN = "clean.qcow2"
BAD = "bad image.qcow2"  # a space: the SARIF URI must be escaped
MISSING = "missing.qcow2"


class Run:
    """One engine run over a clean, a defective and a missing image."""

    def __init__(self, registry: Registry, reports: list[ImageReport], bad_l2: tuple[int, int]) -> None:
        self.registry = registry
        self.reports = reports
        self.bad_l2 = bad_l2  # (file offset of the patched L2 entry, its L2 table offset)

    def report(self, path: str) -> ImageReport:
        return next(r for r in self.reports if r.path == path)


@pytest.fixture(scope="module")
def run(base_images: Any, tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("formats")
    base_images.copy("v3", root, CLEAN)
    bad = base_images.copy("v3", root, BAD)
    img = ib.Qcow2Image(bad)
    _, l2_offset, index = img.guest_to_l2(PATCH_GUEST_OFFSET)
    entry_offset = img.set_l2(l2_offset, index, img.l2_tables[l2_offset][index] | 0x2)  # reserved bit 1: error
    img.set_header_padding(1, 1)  # a warning
    registry = load_registry()
    config = load_config(registry, start=root)
    with contextlib.chdir(root):  # relative image paths, as a CI job passes them
        reports = [lint_path(name, config, registry) for name in (CLEAN, BAD, MISSING)]
    return Run(registry, reports, (entry_offset, l2_offset))


def test_the_run_has_what_the_format_tests_need(run: Run) -> None:
    assert run.report(CLEAN).findings == () and run.report(CLEAN).error is None
    rules = {f.rule: f for f in run.report(BAD).findings}
    assert rules["l2-reserved-bits"].offset == run.bad_l2[0]
    assert rules["l2-reserved-bits"].severity == Severity.ERROR
    assert rules["header-padding-nonzero"].severity == Severity.WARNING
    assert run.report(MISSING).error is not None


# --------------------------------------------------------------------------
# SARIF
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the test extra: pip install -e '.[test]'")
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _schema_errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


@pytest.mark.parametrize("github", [False, True], ids=["sarif", "sarif-github"])
def test_sarif_is_valid_against_the_official_schema(run: Run, sarif_validator: Any, github: bool) -> None:
    document = json.loads(render_sarif(run.reports, run.registry, github=github))
    assert _schema_errors(sarif_validator, document) == []


def test_the_schema_check_catches_a_broken_log(run: Run, sarif_validator: Any) -> None:
    document = json.loads(render_sarif(run.reports, run.registry))
    document["runs"][0]["results"][0]["level"] = "fatal"
    del document["runs"][0]["tool"]["driver"]["name"]
    assert len(_schema_errors(sarif_validator, document)) == 2


def test_sarif_rules_results_and_locations(run: Run) -> None:
    document = json.loads(render_sarif(run.reports, run.registry))
    assert document["version"] == "2.1.0"
    (sarif_run,) = document["runs"]
    driver = sarif_run["tool"]["driver"]
    assert driver["name"] == "qcow2lint" and driver["version"]
    rules = driver["rules"]
    assert [r["id"] for r in rules[: len(run.registry)]] == [r.code for r in run.registry]
    assert rules[-1]["id"] == "Q0000" and rules[-1]["name"] == "internal-error"
    l2_rule = next(r for r in rules if r["name"] == "l2-reserved-bits")
    registry_rule = run.registry.get("l2-reserved-bits")
    assert l2_rule["id"] == registry_rule.code
    assert l2_rule["shortDescription"]["text"].rstrip(".") == registry_rule.summary.rstrip(".")
    assert "QEMU" in l2_rule["help"]["text"] and l2_rule["fullDescription"]["text"] == l2_rule["help"]["text"]
    assert l2_rule["defaultConfiguration"]["level"] == "error"
    assert {r["defaultConfiguration"]["level"] for r in rules} <= {"error", "warning", "note"}

    results = sarif_run["results"]
    findings = run.report(BAD).findings
    assert len(results) == len(findings)
    for result, finding in zip(results, findings):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == finding.code
        assert result["level"] == {"error": "error", "warning": "warning", "info": "note"}[str(finding.severity)]
        assert result["message"]["text"].startswith(finding.message)
        (location,) = result["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "bad%20image.qcow2"
        assert location["physicalLocation"]["region"]["byteOffset"] == finding.offset
        assert location["logicalLocations"] == [{"fullyQualifiedName": finding.location, "kind": "member"}]
    by_rule = {r["ruleId"]: r for r in results}
    assert by_rule["Q0701"]["locations"][0]["physicalLocation"]["region"]["byteLength"] == 8  # an L2 entry
    assert by_rule["Q0110"]["locations"][0]["physicalLocation"]["region"]["byteLength"] == 1

    (invocation,) = sarif_run["invocations"]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and run.report(MISSING).error in note["message"]["text"]
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == MISSING


def test_sarif_of_a_clean_run_succeeded(run: Run) -> None:
    document = json.loads(render_sarif([run.report(CLEAN)], run.registry))
    assert document["runs"][0]["results"] == []
    assert document["runs"][0]["invocations"] == [{"executionSuccessful": True}]


def test_sarif_github_has_line_one_byte_ranges_in_properties_and_stable_fingerprints(run: Run) -> None:
    text = render_sarif(run.reports, run.registry, github=True)
    assert render_sarif(run.reports, run.registry, github=True) == text  # deterministic
    document = json.loads(text)
    rules = document["runs"][0]["tool"]["driver"]["rules"]
    assert all(r["properties"]["problem.severity"] in ("error", "warning", "recommendation") for r in rules)
    results = document["runs"][0]["results"]
    for result, finding in zip(results, run.report(BAD).findings):
        assert result["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
        assert result["properties"]["byteOffset"] == finding.offset
        assert result["properties"]["byteLength"] in (1, 8)
        assert result["properties"]["structurePath"] == finding.location
        # the identity a baseline uses: image, rule, structure path
        expected = hashlib.sha256(f"{BAD}\0{finding.rule}\0{finding.location}".encode()).hexdigest()
        assert result["partialFingerprints"] == {FINGERPRINT_KEY: expected}
    assert len({r["partialFingerprints"][FINGERPRINT_KEY] for r in results}) == len(results)


def test_sarif_uris_are_escaped_relative_references_or_file_uris() -> None:
    from qcow2lint.report.cicommon import artifact_uri

    assert artifact_uri("a b/c%#?.qcow2") == "a%20b/c%25%23%3F.qcow2"
    assert artifact_uri("./x.qcow2") == "x.qcow2"
    assert artifact_uri("a:b.qcow2") == "a%3Ab.qcow2"  # not a URI scheme
    assert artifact_uri("/srv/ä.qcow2") == "file:///srv/%C3%A4.qcow2"


# --------------------------------------------------------------------------
# Microsoft's SARIF Multitool
# --------------------------------------------------------------------------

_MULTITOOL_PLATFORMS = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}


@pytest.fixture(scope="session")
def multitool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``Sarif.Multitool``, the platform binary of npm's @microsoft/sarif-multitool
    (a self-contained .NET executable: no .NET runtime needed)."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot install @microsoft/sarif-multitool to validate SARIF")
    require_host(npm_host())
    prefix = tmp_path_factory.mktemp("sarif-multitool")
    proc = subprocess.run(
        [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "@microsoft/sarif-multitool@5"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"npm install @microsoft/sarif-multitool failed:\n{proc.stdout}\n{proc.stderr}"
    suffix = _MULTITOOL_PLATFORMS.get(platform.system(), platform.system().lower())
    package = prefix / "node_modules" / "@microsoft" / f"sarif-multitool-{suffix}"
    binary = package / ("Sarif.Multitool.exe" if suffix == "win32" else "Sarif.Multitool")
    assert binary.is_file(), f"{binary} is missing; npm installed: {sorted(p.name for p in package.parent.iterdir())}"
    binary.chmod(0o755)  # the package's postinstall does this, but npm may not run install scripts
    return binary


def _multitool_errors(binary: Path, sarif: Path, rule_kind: str) -> list[str]:
    """``Sarif.Multitool validate``'s error-level results for ``sarif``."""
    out = sarif.with_suffix(".validation.sarif")
    env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_SYSTEM_GLOBALIZATION_INVARIANT="1")
    # The binary itself, not the npm wrapper (bin.js), which splits its
    # arguments on ';' and would break "Sarif;Gh".
    proc = subprocess.run(
        [str(binary), "validate", "--rule-kind", rule_kind, "--output", str(out), str(sarif)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0 and out.is_file(), (
        f"Sarif.Multitool exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    )
    validation = json.loads(out.read_text(encoding="utf-8-sig"))
    (vrun,) = validation["runs"]
    failures = [
        n["message"].get("text", "")
        for inv in vrun.get("invocations", ())
        for n in inv.get("toolExecutionNotifications", ()) + inv.get("toolConfigurationNotifications", ())
        if n.get("level", "warning") == "error"
    ]
    errors = [
        f"{r.get('ruleId')}: {r['message'].get('text') or r['message'].get('arguments')}"
        for r in vrun.get("results", ())
        if r.get("level", "warning") == "error"
    ]
    return failures + errors


@pytest.mark.network
@pytest.mark.parametrize(("github", "rule_kind"), [(False, "Sarif"), (True, "Sarif;Gh")], ids=["sarif", "sarif-github"])
def test_the_sarif_multitool_reports_no_errors(
    run: Run, multitool: Path, tmp_path: Path, github: bool, rule_kind: str
) -> None:
    sarif = tmp_path / "report.sarif"
    sarif.write_text(render_sarif(run.reports, run.registry, github=github), encoding="utf-8")
    assert _multitool_errors(multitool, sarif, rule_kind) == []


@pytest.mark.network
def test_the_sarif_multitool_does_catch_errors(run: Run, multitool: Path, tmp_path: Path) -> None:
    document = json.loads(render_sarif(run.reports, run.registry, github=True))
    document["runs"][0]["results"][0]["ruleIndex"] = 100000
    del document["runs"][0]["results"][1]["locations"]
    sarif = tmp_path / "broken.sarif"
    sarif.write_text(json.dumps(document), encoding="utf-8")
    errors = _multitool_errors(multitool, sarif, "Sarif;Gh")
    assert any(e.startswith("SARIF1009") for e in errors), errors  # index out of range
    assert any(e.startswith("GH") for e in errors), errors  # the GitHub rules ran


# --------------------------------------------------------------------------
# GitHub workflow commands
# --------------------------------------------------------------------------

# ::name key=value,key=value::message  (docs.github.com, "Workflow commands
# for GitHub Actions"); messages escape % CR LF, property values also : and ,
_COMMAND = re.compile(r"^::(?P<name>[a-z-]+)(?: (?P<props>[^:\r\n]*))?::(?P<message>[^\r\n]*)$")
_UNESCAPE = {"%0D": "\r", "%0A": "\n", "%3A": ":", "%2C": ",", "%25": "%"}


def _unescape(text: str, prop: bool) -> str:
    allowed = ("%25", "%0D", "%0A", "%3A", "%2C") if prop else ("%25", "%0D", "%0A")
    return re.sub("|".join(allowed), lambda m: _UNESCAPE[m.group()], text)


def parse_workflow_commands(output: str) -> list[tuple[str, dict[str, str], str]]:
    """``[(command, properties, message)]``; every line must be a command."""
    commands = []
    for line in output.splitlines():
        match = _COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        props: dict[str, str] = {}
        for item in filter(None, (match["props"] or "").split(",")):
            key, sep, value = item.partition("=")
            assert sep and re.fullmatch(r"[A-Za-z]+", key), f"bad property {item!r} in {line!r}"
            props[key] = _unescape(value, prop=True)
        commands.append((match["name"], props, _unescape(match["message"], prop=False)))
    return commands


def test_github_commands_annotate_each_finding_and_the_unreadable_image(run: Run) -> None:
    commands = parse_workflow_commands(render_github(run.reports))
    expected = [
        (
            {"error": "error", "warning": "warning", "info": "notice"}[str(f.severity)],
            {"file": BAD, "title": f"{f.code} {f.rule}"},
            f"{f.offset:#x} [{f.location}] {f.message}",
        )
        for f in run.report(BAD).findings
    ]
    expected.append(("error", {"file": MISSING, "title": "qcow2lint"}, f"not checked: {run.report(MISSING).error}"))
    assert commands == expected
    assert render_github([run.report(CLEAN)]) == ""


def test_github_commands_escape_messages_and_properties() -> None:
    message = "100% bad\r\nsecond line: a, b ::warning::x"
    finding = Finding("t-rule", "T0001", Severity.INFO, 16, "l1[2]", message)
    report = ImageReport("dir,with:odd%name\n.qcow2", (finding,))
    output = render_github([report])
    assert output.count("\n") == 1 and output.startswith("::notice file=dir%2Cwith%3Aodd%25name%0A.qcow2,")
    ((name, props, text),) = parse_workflow_commands(output)
    assert (name, props, text) == ("notice", {"file": report.path, "title": "T0001 t-rule"}, f"0x10 [l1[2]] {message}")


def test_github_step_summary_is_a_markdown_table(run: Run) -> None:
    summary = github_step_summary(run.reports)
    lines = summary.splitlines()
    assert lines[0] == "## qcow2lint"
    tables = [[line for line in block.splitlines() if line.startswith("|")] for block in summary.split("\n\n")]
    tables = [t for t in tables if t]
    assert len(tables) == 2
    for table in tables:
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table}
        assert len(widths) == 1, table  # every row has the header's columns
        assert re.fullmatch(r"\|(-+:?\|)+", table[1].replace("---:", "--:"))
    counts, found = tables
    assert len(counts) == 2 + 3 and len(found) == 2 + len(run.report(BAD).findings)
    assert any("`bad image.qcow2` | 1 | 1 | 0" in row for row in counts)
    assert any("l2-reserved-bits" in row and f"`{run.bad_l2[0]:#x}`" in row for row in found)
    pipe = ImageReport("a|b.qcow2", (Finding("t-rule", "T0001", Severity.ERROR, 0, "x", "a | b\nc"),))
    assert "a \\| b c" in github_step_summary([pipe])
    assert "more findings" in github_step_summary([pipe, pipe], max_rows=1)


# --------------------------------------------------------------------------
# GitLab Code Quality
# --------------------------------------------------------------------------


def test_gitlab_code_quality_has_the_required_keys_and_unique_fingerprints(run: Run) -> None:
    issues = json.loads(render_gitlab(run.reports))
    assert isinstance(issues, list) and len(issues) == len(run.report(BAD).findings) + 1
    for issue in issues:
        assert isinstance(issue["description"], str) and issue["description"]
        assert isinstance(issue["check_name"], str) and issue["check_name"]
        assert re.fullmatch(r"[0-9a-f]{64}", issue["fingerprint"])
        assert issue["severity"] in ("info", "minor", "major", "critical", "blocker")
        assert isinstance(issue["location"]["path"], str) and issue["location"]["lines"]["begin"] == 1
    assert len({i["fingerprint"] for i in issues}) == len(issues)
    by_check = {i["check_name"]: i for i in issues}
    assert by_check["l2-reserved-bits"]["severity"] == "major"
    assert by_check["header-padding-nonzero"]["severity"] == "minor"
    assert by_check["l2-reserved-bits"]["location"]["path"] == BAD
    assert by_check["unreadable-image"]["location"]["path"] == MISSING
    assert json.loads(render_gitlab([run.report(CLEAN)])) == []


def test_gitlab_fingerprints_are_stable_and_unique_even_for_identical_findings() -> None:
    finding = Finding("t-rule", "T0001", Severity.INFO, 16, "l1[2]", "same")
    report = ImageReport("a.qcow2", (finding, finding))
    first = json.loads(render_gitlab([report]))
    assert first == json.loads(render_gitlab([report]))
    assert first[0]["fingerprint"] != first[1]["fingerprint"]
    assert first[0]["severity"] == "info"


# --------------------------------------------------------------------------
# JUnit
# --------------------------------------------------------------------------


def test_junit_has_a_suite_per_image_and_a_case_per_rule(run: Run) -> None:
    root = ET.fromstring(render_junit(run.reports, run.registry).encode())
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [CLEAN, BAD, MISSING]
    names = [rule.name for rule in run.registry]
    clean, bad, missing = suites
    for suite in (clean, bad):
        cases = suite.findall("testcase")
        assert [c.get("name") for c in cases] == names
        assert {c.get("classname") for c in cases} == {suite.get("name")}
        assert int(suite.get("tests")) == len(names)
    assert clean.get("failures") == "0" and clean.get("errors") == "0"
    assert not clean.findall(".//failure")
    failed = {c.get("name"): c.find("failure") for c in bad.findall("testcase") if c.find("failure") is not None}
    assert set(failed) == {"l2-reserved-bits", "header-padding-nonzero"}
    assert bad.get("failures") == "2"
    assert failed["l2-reserved-bits"].get("type") == "error"
    assert failed["header-padding-nonzero"].get("type") == "warning"
    l2 = next(f for f in run.report(BAD).findings if f.rule == "l2-reserved-bits")
    assert l2.message in failed["l2-reserved-bits"].text and "1 finding" in failed["l2-reserved-bits"].get("message")
    (case,) = missing.findall("testcase")
    assert case.find("error") is not None and run.report(MISSING).error in case.find("error").get("message")
    assert missing.get("errors") == "1"
    assert root.get("tests") == str(2 * len(names) + 1)
    assert (root.get("failures"), root.get("errors")) == ("2", "1")


def test_junit_enabled_rules_fail_level_and_unprintable_characters(run: Run) -> None:
    root = ET.fromstring(
        render_junit(
            [run.report(BAD)],
            run.registry,
            enabled={"l2-reserved-bits", "header-padding-nonzero"},
            fail_level=Severity.ERROR,
        ).encode()
    )
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"l2-reserved-bits", "header-padding-nonzero"}
    assert cases["header-padding-nonzero"].find("failure") is None  # below the fail level
    assert "header padding" in cases["header-padding-nonzero"].find("system-out").text
    assert cases["l2-reserved-bits"].find("failure") is not None
    weird = ImageReport("x.qcow2", (Finding("internal-error", "Q0000", Severity.ERROR, 0, "x", "bad \x00\x1b name"),))
    root = ET.fromstring(render_junit([weird], run.registry, enabled=()).encode())
    (case,) = root.iter("testcase")
    assert case.get("name") == "internal-error" and "bad \\x00\\x1b name" in case.find("failure").text
