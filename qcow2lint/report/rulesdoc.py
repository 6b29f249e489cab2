"""The rules reference (docs/rules.md) and one page per rule
(docs/rules/NAME.md), generated from the registry so that they cannot drift
from it.

A rule's page renders its docstring: the first line is the summary, the
paragraph that starts with ``QEMU:`` is "What QEMU does", the text after
``Repair:`` (in that paragraph or its own) is "Repair", every other
paragraph is "What it flags"; every ``spec, "Section"`` citation is listed
as a section of QEMU's ``docs/interop/qcow2.rst``.  The optional ``REPRO``
constant (shell commands that make ``repro.qcow2``) becomes the
"Reproduction" section, and ``STRICTER_THAN_QEMU`` (why the rule flags an
image that ``qemu-img check`` passes) the "Stricter than qemu-img check"
section, listed in docs/rules.md too.
"""

from __future__ import annotations

import re
import textwrap
from typing import TypedDict

from qcow2lint.aliases import MERGED, RENAMED
from qcow2lint.registry import INTERNAL_ERROR, INTERNAL_ERROR_CODE, Registry, Rule
from qcow2lint.text import yaml_value

#: Conditions that have a name but no rule of their own, and where they are reported.
ANSWERED = {
    "l2-table-out-of-file": "Same condition as `l2-out-of-file`; reported there.",
    "l2-unallocated-nonzero-bits": "An unallocated entry's only other legal bit is COPIED (`l2-offset0-copied-without-data-file`); every other bit is reserved and reported by `l2-reserved-bits`.",
    "data-file-compressed": "Same condition as `compressed-with-data-file`; reported there.",
    "overlap-<kindA>-<kindB>": "One rule, `metadata-overlap`, reports every pair of kinds, naming both in the message; overlaps that place an L2 table on another structure are `l1-entry-points-to-metadata`.",
    "v2-refcount-order": 'Its condition is "(n/a)": a v2 header has no refcount_order field. The reader never reads bytes 96..103 of a v2 header as fields and uses 16-bit refcounts, as QEMU does; v3-looking bytes there are reported by `header-v2-has-v3-bytes`.',
    "image-end-offset": "A figure, not a defect: `image-end-offset` is in the `stats` of every image in `--format json` and in `--statistics`.",
    # Retired names (qcow2lint.aliases): they still select their rule.
    **{
        old: f"The former name of `{new}`; configuration files, `--select`/`--ignore` and baselines still accept it."
        for old, new in RENAMED.items()
    },
    **{
        old: f"Same condition as `{new}`; reported there alone. The name "
        + "".join(f"and its code {code} " for code, to in MERGED.items() if to == new and re.fullmatch(r"Q\d{4}", code))
        + f"still select `{new}`."
        for old, new in MERGED.items()
        if not re.fullmatch(r"Q\d{4}", old)
    },
}


def _paragraph(doc: str, prefix: str) -> str:
    """The docstring paragraph that starts with ``prefix``, on one line."""
    for paragraph in re.split(r"\n\s*\n", doc):
        text = " ".join(paragraph.split())
        if text.startswith(prefix):
            return text[len(prefix) :].strip()
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _severity(rule: Rule) -> str:
    """The default severity, marked *(off)* for a rule that is off by default."""
    return str(rule.severity) if rule.default_enabled else f"{rule.severity} *(off)*"


def _qemu(rule: Rule) -> str:
    text = _paragraph(rule.doc, "QEMU:")
    return text.split(" Repair:")[0]


def rules_markdown(registry: Registry) -> str:
    """docs/rules.md: every rule with its structure and QEMU's behaviour."""
    lines = [
        "# Rules reference",
        "",
        "Generated from the rule registry by `python -m qcow2lint.gen` (`qcow2lint rules",
        "--markdown` prints it); a test keeps it in step. Each rule has a page,",
        "`docs/rules/NAME.md` (linked below; SARIF's `helpUri` points at it), and",
        "`qcow2lint rule NAME` prints the same documentation (what it flags, the qcow2",
        "specification's section, what QEMU does, how to repair, and where one is known a",
        "reproduction with `qemu-img`/`qemu-io`). A rule's documentation cites the qcow2 specification",
        '(QEMU\'s `docs/interop/qcow2.rst`) by section title, as spec, "Cluster mapping".',
        "Structure is the record type the rule judges. Rule names and codes are stable.",
        "A severity marked *(off)* is a rule that is off by default (a legal",
        "layout QEMU writes, or a policy for untrusted images): the `pedantic` preset, or",
        "naming the rule in a configuration, enables it. Codes are grouped by structure",
        "(`Q01xx` header, `Q02xx` feature bits, ... `Q15xx` file level) and never change once given.",
        "",
        "| code | rule | severity | structure | what it flags | what QEMU does |",
        "|---|---|---|---|---|---|",
    ]
    for rule in registry:
        lines.append(
            f"| {rule.code} | [`{rule.name}`](rules/{rule.name}.md) | {_severity(rule)} | {rule.scope} | "
            f"{_cell(rule.summary)} | {_cell(_qemu(rule))} |"
        )
    lines.append(
        f"| {INTERNAL_ERROR_CODE} | [`{INTERNAL_ERROR}`](rules/{INTERNAL_ERROR}.md) | error | (engine) | A rule crashed on this image; "
        "the other rules still ran. | n/a |"
    )
    lines += _refusals(registry)
    lines += _stricter(registry)
    lines += ["", "## Named conditions that are not separate rules", "", "| condition | answer |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(answer)} |" for name, answer in ANSWERED.items()]
    return "\n".join(lines) + "\n"


def _refusals(registry: Registry) -> list[str]:
    """The section that lists every message with which QEMU 7.2 refuses to
    open an image, beside the error-level rule that flags that image (each
    rule's ``QEMU_REFUSES``; tests/test_qemu_refusals.py makes qemu-io
    refuse an image with each message)."""
    rows = sorted(
        ((message, rule) for rule in registry for message in rule.qemu_refuses), key=lambda row: row[0].lower()
    )
    lines = [
        "",
        "## What QEMU refuses to open",
        "",
        "Every message with which QEMU 7.2 refuses to open a qcow2 image (`qemu-io`,",
        "`qemu-img`: \"Could not open 'IMAGE': MESSAGE\"), beside the rule that flags such",
        "an image. N stands for a number, NAME for a name.",
        "",
        "| QEMU's message | rule | severity |",
        "|---|---|---|",
    ]
    lines += [f"| {_cell(message)} | `{rule.name}` ({rule.code}) | {rule.severity} |" for message, rule in rows]
    return lines


def _stricter(registry: Registry) -> list[str]:
    """The section that lists the rules that flag, as errors, images that
    ``qemu-img check`` passes, each with why (its ``STRICTER_THAN_QEMU``)."""
    lines = [
        "",
        "## Where qcow2lint is stricter than qemu-img check",
        "",
        'These rules report an error on images that `qemu-img check` passes ("No errors',
        'were found"). Each is right to: the specification forbids what they flag, or',
        "QEMU fails or loses data when the image is used, not when it is checked.",
        "The differential fuzzer (`fuzz/README.md`) counts such images by rule.",
        "",
        "| rule | why an error where qemu-img check passes |",
        "|---|---|",
    ]
    lines += [
        f"| `{rule.name}` ({rule.code}) | {_cell(rule.stricter_than_qemu)} |"
        for rule in registry
        if rule.stricter_than_qemu
    ]
    return lines


_SPEC = re.compile(r'spec, "([^"]+)"')
_INTERNAL_PAGE_DOC = (
    "A rule crashed on this image; the other rules still ran.\n\n"
    "The engine reports a crashing rule (or a crash of the whole-image refcount analysis) as this "
    "finding instead of stopping; the rule's other findings for the image are skipped. The message "
    "names the rule and the exception. It is a bug in the rule (or the plugin that provides it): "
    "please report it with the image, or the smallest image that shows it.\n"
)


class DocSections(TypedDict):
    """A rule docstring's parts (see :func:`doc_sections`)."""

    summary: str
    details: list[str]
    qemu: str
    repair: str
    spec: list[str]


def doc_sections(doc: str) -> DocSections:
    """A rule docstring split into ``summary``, ``details`` (paragraphs),
    ``qemu``, ``repair`` and ``spec`` (the cited section titles)."""
    text = textwrap.dedent(doc).strip()
    paragraphs = [
        part.strip()
        for p in re.split(r"\n\s*\n", text)
        for part in re.split(r"\n(?=(?:QEMU|Repair):)", p)  # a "QEMU:" line starts its own section
        if part.strip()
    ]
    summary = paragraphs[0] if paragraphs else ""
    details: list[str] = []
    qemu = repair = ""
    for paragraph in paragraphs[1:]:
        if paragraph.startswith("QEMU:"):
            body = paragraph[len("QEMU:") :].strip()
            body, _, fix = body.partition("Repair:")
            qemu = body.strip()
            repair = (repair + " " + fix.strip()).strip() if fix else repair
        elif paragraph.startswith("Repair:"):
            repair = (repair + " " + paragraph[len("Repair:") :].strip()).strip()
        else:
            details.append(paragraph)
    qemu, repair = _sentence_case(qemu), _sentence_case(repair)
    spec: list[str] = []
    for title in _SPEC.findall(" ".join(text.split())):
        if title not in spec:
            spec.append(title)
    return DocSections(summary=summary, details=details, qemu=qemu, repair=repair, spec=spec)


def _sentence_case(text: str) -> str:
    """One line, starting with a capital letter (unless it starts with code)."""
    text = " ".join(text.split())
    return text[:1].upper() + text[1:] if text[:1].isalpha() else text


def _type_name(value: object) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)


def rule_page(rule: Rule) -> str:
    """docs/rules/NAME.md: one rule's reference page."""
    parts = doc_sections(rule.doc)
    lines = [f"# {rule.name} ({rule.code})", "", str(parts["summary"]), ""]
    spec = parts["spec"]
    lines += [
        "| | |",
        "|---|---|",
        f"| code | {rule.code} |",
        f"| default severity | {rule.severity} |",
        f"| structure | {rule.scope} |",
        "| spec section | " + (", ".join(f'"{title}"' for title in spec) if spec else "n/a") + " |",
        "",
    ]
    if parts["details"]:
        lines += ["## What it flags", ""]
        for paragraph in parts["details"]:
            lines += [paragraph, ""]
    if spec:
        lines += [
            "The sections are those of the qcow2 specification, QEMU's `docs/interop/qcow2.rst`.",
            "",
        ]
    lines += ["## What QEMU does", "", str(parts["qemu"]) or "Not documented for this rule.", ""]
    if rule.stricter_than_qemu:
        lines += ["## Stricter than qemu-img check", "", rule.stricter_than_qemu, ""]
    lines += ["## Repair", "", str(parts["repair"]) or "No repair is documented for this rule.", ""]
    lines += ["## Options", ""]
    if rule.options:
        lines += ["| option | type | default |", "|---|---|---|"]
        lines += [
            f"| `{name}` | {_type_name(default)} | `{yaml_value(default)}` |" for name, default in rule.options.items()
        ]
    else:
        lines.append("None besides `level` and `enabled`.")
    settings = ", ".join([f"level: {rule.severity}", *(f"{k}: {yaml_value(v)}" for k, v in rule.options.items())])
    lines += [
        "",
        "In a configuration file (`.qcow2lint.yaml`):",
        "",
        "```yaml",
        "rules:",
        f"  {rule.name}: {{{settings}}}   # or: disable",
        "```",
        "",
    ]
    if rule.repro:
        lines += [
            "## Reproduction",
            "",
            "These commands make an image that this rule flags (the test suite runs them):",
            "",
            "```sh",
            *rule.repro.rstrip("\n").splitlines(),
            f"qcow2lint check --select {rule.name} repro.qcow2",
            "```",
            "",
        ]
    lines += ["---", "", "[All rules](../rules.md) · generated by `python -m qcow2lint.gen` from the rule's source"]
    return "\n".join(lines) + "\n"


def internal_error_page() -> str:
    """docs/rules/internal-error.md: the engine's pseudo-rule."""
    lines = [
        f"# {INTERNAL_ERROR} ({INTERNAL_ERROR_CODE})",
        "",
        *textwrap.dedent(_INTERNAL_PAGE_DOC).strip().split("\n\n")[:1],
        "",
        "| | |",
        "|---|---|",
        f"| code | {INTERNAL_ERROR_CODE} |",
        "| default severity | error |",
        "| structure | (engine) |",
        "| spec section | n/a |",
        "",
        "## What it flags",
        "",
        _INTERNAL_PAGE_DOC.split("\n\n", 1)[1].strip(),
        "",
        "---",
        "",
        "[All rules](../rules.md) · generated by `python -m qcow2lint.gen`",
    ]
    return "\n".join(lines) + "\n"


def rule_pages(registry: Registry) -> dict[str, str]:
    """Every page of docs/rules/, by file name."""
    pages = {f"{rule.name}.md": rule_page(rule) for rule in registry}
    pages[f"{INTERNAL_ERROR}.md"] = internal_error_page()
    return pages
