"""Walks an Image, runs each enabled rule on the records of its scope.

The engine stamps every problem with its rule's name, code and configured
severity, caps findings per rule per image, and turns a rule that raises
into an ``internal-error`` finding without stopping the other rules.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from qcow2lint import records, spec
from qcow2lint.config import Config
from qcow2lint.findings import Finding, Omitted, Problem, Severity
from qcow2lint.reader import ImageError, open_image
from qcow2lint.registry import INTERNAL_ERROR, INTERNAL_ERROR_CODE, Registry, Rule


class RuleContext:
    """What a rule may see besides its record: read-only facts and options."""

    def __init__(self, image: records.Image, options: Mapping[str, Any], budget: list[int]) -> None:
        self._image = image
        self._options = MappingProxyType(dict(options))
        self._budget = budget

    @property
    def image(self) -> records.Image:
        """The whole image (for cross-structure facts)."""
        return self._image

    @property
    def header(self) -> records.Header:
        """The image header."""
        return self._image.header

    @property
    def cluster_size(self) -> int:
        """Bytes per cluster."""
        return self._image.header.cluster_size

    @property
    def file_size(self) -> int:
        """Size of the image file in bytes."""
        return self._image.file_size

    @property
    def options(self) -> Mapping[str, Any]:
        """The rule's options, defaults overlaid with the configuration."""
        return self._options

    @property
    def remaining(self) -> int:
        """How many more findings this rule may report for this image."""
        return self._budget[0]


@attrs.frozen
class ImageReport:
    """The outcome for one image: findings, or the reason it was not read."""

    path: str
    findings: tuple[Finding, ...] = ()
    error: str | None = None

    def counts(self) -> dict[str, int]:
        """Findings per severity."""
        counts = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for finding in self.findings:
            counts[str(finding.severity)] += 1
        return counts


def _records(image: records.Image, scopes: set[type]) -> Iterator[object]:
    """Every record of the image whose type some enabled rule inspects."""
    yield image
    # Header rules judge a qcow2 header; a file that is not one (bad magic,
    # unknown version) is judged only by the Image-level rules.
    if image.header.magic == spec.QCOW_MAGIC and image.header.version in spec.SUPPORTED_VERSIONS:
        yield image.header
    yield from image.problems
    if not image.readable:
        return
    if image.extension_area is not None:
        yield image.extension_area
    yield from image.extensions
    if image.encryption is not None:
        yield image.encryption
    if image.bitmaps is not None:
        yield image.bitmaps
    yield from image.bitmap_directory
    yield from image.bitmap_tables
    yield from image.l1_tables()
    if image.refcount_table is not None:
        yield image.refcount_table
    if image.snapshots is not None:
        yield image.snapshots
        yield from image.snapshots.entries
    # The big tables are streamed, and only read when a rule wants them.
    if records.L2Tables in scopes:
        yield from image.l2_batches()
    if records.RefcountBlock in scopes:
        yield from image.refcount_blocks()


def _where(record: object) -> tuple[int, str]:
    offset = getattr(record, "file_offset", 0)
    if isinstance(record, records.L2Tables):
        offset = int(record.offsets[0]) if len(record.offsets) else 0
    return int(offset), str(getattr(record, "path", type(record).__name__))


def run_rules(image: records.Image, config: Config, registry: Registry) -> list[Finding]:
    """Run every enabled rule over ``image``; findings sorted by offset, code."""
    rules = [rule for rule in registry if config.rules[rule.name].enabled]
    by_scope: dict[type, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_scope[rule.scope].append(rule)
    cap = config.max_findings_per_rule or float("inf")
    budgets = {rule.name: [cap] for rule in rules}
    omitted: dict[str, int] = defaultdict(int)
    last_offset: dict[str, int] = {}
    crashed: set[str] = set()
    findings: list[Finding] = []

    for record in _records(image, set(by_scope)):
        for rule in by_scope.get(type(record), ()):
            if rule.name in crashed:
                continue
            settings = config.rules[rule.name]
            budget = budgets[rule.name]
            ctx = RuleContext(image, settings.options, budget)
            try:
                for item in rule.check(record, ctx) or ():
                    if isinstance(item, Omitted):
                        omitted[rule.name] += item.count
                    elif budget[0] > 0:
                        budget[0] -= 1
                        last_offset[rule.name] = item.offset
                        findings.append(
                            Finding(rule.name, rule.code, settings.severity, item.offset, item.location, item.message)
                        )
                    else:
                        omitted[rule.name] += 1
            except Exception as exc:  # a crashing plugin is a finding, not a crash
                crashed.add(rule.name)
                offset, where = _where(record)
                findings.append(
                    Finding(INTERNAL_ERROR, INTERNAL_ERROR_CODE, Severity.ERROR, offset, where,
                            f"rule {rule.name} ({rule.origin}) crashed on {where}: "
                            f"{type(exc).__name__}: {exc}; its other findings for this image are skipped")
                )  # fmt: skip

    for rule in rules:
        if omitted.get(rule.name):
            findings.append(
                Finding(rule.name, rule.code, config.rules[rule.name].severity, last_offset.get(rule.name, 0),
                        "...", f"and {omitted[rule.name]} more {rule.name} findings not shown "
                        f"(max-findings-per-rule is {config.max_findings_per_rule})")
            )  # fmt: skip
    # The "and N more" finding stays last among its rule's findings.
    findings.sort(key=lambda f: (f.location == "...", f.sort_key()))
    return findings


def lint_path(path: str | os.PathLike[str], config: Config, registry: Registry) -> ImageReport:
    """Read and lint one image file."""
    try:
        with open_image(path) as image:
            return ImageReport(os.fspath(path), tuple(run_rules(image, config, registry)))
    except ImageError as exc:
        return ImageReport(os.fspath(path), error=str(exc))
