"""The rules reference (docs/rules.md) and the README's rule list,
generated from the registry so that they cannot drift from it."""

from __future__ import annotations

import re

from qcow2lint.registry import INTERNAL_ERROR, INTERNAL_ERROR_CODE, Registry, Rule

#: Catalogue rows that are not rules of their own, and why.
ANSWERED = {
    "l2-table-out-of-file": "Same condition as `l2-out-of-file` (the catalogue row says \"See l2-out-of-file\"); reported there.",
    "l2-unallocated-nonzero-bits": "An unallocated entry's only other legal bit is COPIED (`l2-offset0-copied-without-data-file`); every other bit is reserved and reported by `l2-reserved-bits`, as the catalogue row notes.",
    "data-file-compressed": "Same condition as `compressed-with-data-file` (the catalogue row says \"see compressed-with-data-file\"); reported there.",
    "overlap-<kindA>-<kindB>": "One rule, `metadata-overlap`, reports every pair of kinds, naming both in the message; overlaps that place an L2 table on another structure are `l1-entry-points-to-metadata`.",
    "v2-refcount-order": "Its condition is \"(n/a)\": a v2 header has no refcount_order field. The reader never reads bytes 96..103 of a v2 header as fields and uses 16-bit refcounts, as QEMU does; v3-looking bytes there are reported by `header-v2-has-v3-bytes`.",
    "image-end-offset": "A figure, not a defect: `image-end-offset` is in the `stats` of every image in `--format json` and in `--statistics`.",
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


def _qemu(rule: Rule) -> str:
    text = _paragraph(rule.doc, "QEMU:")
    return text.split(" Repair:")[0]


def rules_markdown(registry: Registry) -> str:
    """docs/rules.md: every rule with its structure and QEMU's behaviour."""
    lines = [
        "# Rules reference",
        "",
        "Generated from the rule registry by `python -m qcow2lint.gen` (`qcow2lint rules",
        "--markdown` prints it); a test keeps it in step. `qcow2lint rule NAME` prints a",
        "rule's full documentation (what it flags, the qcow2 specification's section, what",
        "QEMU does, how to repair). A rule's documentation cites the qcow2 specification",
        "(QEMU's `docs/interop/qcow2.rst`) by section title, as spec, \"Cluster mapping\".",
        "Structure is the record type the rule judges. Rule names are those of the defect",
        "catalogue.",
        "",
        "| code | rule | severity | structure | what it flags | what QEMU does |",
        "|---|---|---|---|---|---|",
    ]
    for rule in registry:
        lines.append(
            f"| {rule.code} | `{rule.name}` | {rule.severity} | {rule.scope} | "
            f"{_cell(rule.summary)} | {_cell(_qemu(rule))} |"
        )
    lines.append(
        f"| {INTERNAL_ERROR_CODE} | `{INTERNAL_ERROR}` | error | (engine) | A rule crashed on this image; "
        "the other rules still ran. | n/a |"
    )
    lines += ["", "## Catalogue rows that are not separate rules", "", "| catalogue row | answer |", "|---|---|"]
    lines += [f"| `{name}` | {_cell(answer)} |" for name, answer in ANSWERED.items()]
    return "\n".join(lines) + "\n"


def rules_table(registry: Registry) -> str:
    """The README's rule list: code, name, severity, summary."""
    lines = ["| code | rule | severity | what it flags |", "|---|---|---|---|"]
    lines += [f"| {r.code} | {r.name} | {r.severity} | {_cell(r.summary)} |" for r in registry]
    return "\n".join(lines) + "\n"
