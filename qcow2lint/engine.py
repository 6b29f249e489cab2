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
from qcow2lint.analysis import RefcountBuilder, RefcountCheck, StoredRefcounts, read_stored_refcounts
from qcow2lint.config import Config
from qcow2lint.findings import Finding, Omitted, Severity
from qcow2lint.reader import ImageError, open_image
from qcow2lint.registry import INTERNAL_ERROR, INTERNAL_ERROR_CODE, Registry, Rule
from qcow2lint.text import exception_text


class ImageFacts:
    """Facts about one image that several rules share, computed once on
    first use (the stored refcounts need every refcount block)."""

    def __init__(self, image: records.Image) -> None:
        self.image = image
        self._stored: StoredRefcounts | None = None
        self._stored_read = False

    def stored_refcounts(self) -> StoredRefcounts | None:
        """The stored refcounts (None when the image is too large)."""
        if not self._stored_read:
            self._stored = read_stored_refcounts(self.image)
            self._stored_read = True
        return self._stored


class RuleContext:
    """What a rule may see besides its record: read-only facts and options."""

    def __init__(self, facts: ImageFacts, options: Mapping[str, Any], budget: list[int]) -> None:
        self._image = facts.image
        self._facts = facts
        self._options = MappingProxyType(dict(options))
        self._budget = budget

    @property
    def stored_refcounts(self) -> StoredRefcounts | None:
        """The refcounts stored on disk, decoded (read once per image)."""
        return self._facts.stored_refcounts()

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
    #: ``qemu-img check --output=json`` figures, when the analysis ran.
    stats: dict[str, int] | None = None

    def ok(self, fail_level: Severity | str = Severity.ERROR) -> bool:
        """The verdict: True when the image was read and no finding has
        ``fail_level`` (a Severity or ``error``/``warning``/``info``) or worse,
        as the command line's exit code 0."""
        threshold = fail_level if isinstance(fail_level, Severity) else Severity.parse(fail_level)
        return self.error is None and not any(f.severity >= threshold for f in self.findings)

    @property
    def passed(self) -> bool:
        """The verdict at the default fail level: no error-level finding."""
        return self.ok()

    def counts(self) -> dict[str, int]:
        """Findings per severity."""
        counts = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for finding in self.findings:
            counts[str(finding.severity)] += 1
        return counts


def _records(image: records.Image, scopes: set[str], builder: RefcountBuilder | None) -> Iterator[object]:
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
    # The big tables are streamed, and only read when someone wants them;
    # the whole-image analysis is fed by the same pass over the L2 tables.
    if "RefcountBlock" in scopes:
        yield from image.refcount_blocks()
    deep = "CompressedCluster" in scopes
    if builder is not None or deep or "L2Tables" in scopes:
        for batch in image.l2_batches():
            yield batch
            if deep:
                yield from image.compressed_clusters(batch)
            if builder is not None:
                try:
                    builder.add_batch(batch)
                except Exception as exc:  # never lose the rule findings to the analysis
                    builder = None
                    yield AnalysisFailed(exception_text(exc))
    if builder is not None:
        try:
            check = builder.finish()
        except Exception as exc:
            yield AnalysisFailed(exception_text(exc))
        else:
            yield check


@attrs.frozen
class AnalysisFailed:
    """The whole-image analysis crashed; reported as an internal error."""

    message: str


def _where(record: object) -> tuple[int, str]:
    offset = getattr(record, "file_offset", 0)
    if isinstance(record, records.L2Tables):
        offset = int(record.offsets[0]) if len(record.offsets) else 0
    return int(offset), str(getattr(record, "path", type(record).__name__))


def run_rules(
    image: records.Image, config: Config, registry: Registry, stats: dict[str, int] | None = None,
    deep: bool = False,
) -> list[Finding]:
    """Run every enabled rule over ``image``; findings sorted by offset, code.

    The whole-image refcount analysis runs when a rule needs it or when
    ``stats`` is given (it receives qemu-img check's figures).  Rules on
    compressed payloads run only with ``deep`` (every payload is read).
    """
    rules = [
        rule for rule in registry
        if config.rules[rule.name].enabled and (deep or rule.scope != "CompressedCluster")
    ]  # fmt: skip
    by_scope: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_scope[rule.scope].append(rule)
    cap = config.max_findings_per_rule or float("inf")
    budgets = {rule.name: [cap] for rule in rules}
    omitted: dict[str, int] = defaultdict(int)
    last_offset: dict[str, int] = {}
    crashed: set[str] = set()
    findings: list[Finding] = []
    facts = ImageFacts(image)
    builder = None
    try:
        if image.readable and ("RefcountCheck" in by_scope or stats is not None):
            stored = facts.stored_refcounts()
            builder = RefcountBuilder(image, stored) if stored is not None else None
    except Exception as exc:
        findings.append(_analysis_failed(exception_text(exc)))

    for record in _records(image, set(by_scope), builder):
        if isinstance(record, AnalysisFailed):
            findings.append(_analysis_failed(record.message))
            continue
        if isinstance(record, RefcountCheck) and stats is not None:
            stats.update(record.stats)
        for rule in by_scope.get(type(record).__name__, ()):
            if rule.name in crashed:
                continue
            settings = config.rules[rule.name]
            budget = budgets[rule.name]
            ctx = RuleContext(facts, settings.options, budget)
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
                            f"{exception_text(exc)}; its other findings for this image are skipped")
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


def _analysis_failed(message: str) -> Finding:
    return Finding(INTERNAL_ERROR, INTERNAL_ERROR_CODE, Severity.ERROR, 0, "refcounts",
                   f"the whole-image refcount analysis crashed ({message}); refcount and overlap rules were skipped")  # fmt: skip


def lint_path(
    path: str | os.PathLike[str], config: Config, registry: Registry, want_stats: bool = False,
    deep: bool = False,
) -> ImageReport:
    """Read and lint one image file (and compute qemu-img check's figures)."""
    try:
        with open_image(path) as image:
            stats: dict[str, int] | None = {} if want_stats else None
            findings = tuple(run_rules(image, config, registry, stats, deep))
            return ImageReport(os.fspath(path), findings, stats=stats or None)
    except ImageError as exc:
        return ImageReport(os.fspath(path), error=str(exc))
