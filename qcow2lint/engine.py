"""Walks an image file, runs each enabled rule on the records of its scope.

Records come from the :class:`~qcow2lint.reader.ImageFile` (the Image's
structures, then the streamed tables) and from the whole-image passes of
:data:`qcow2lint.passes.PASSES`, which are fed the same L2 batches.  Rules
are dispatched by the name of their scope's record type.  The engine stamps
every problem with its rule's name, code and configured severity, caps
findings per rule per image (the final "and N more" finding carries N, so
totals stay true), turns a rule or pass that raises into an
``internal-error`` finding without stopping the other rules, and finally
numbers the findings and links each consequence to its root cause
(:func:`link_findings`, :mod:`qcow2lint.causes`).
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, cast

import attrs

from qcow2lint import records, results, spec
from qcow2lint.causes import link_consequences, number
from qcow2lint.config import Config
from qcow2lint.context import NotRead
from qcow2lint.findings import Finding, ImageReport, Omitted, Problem, Severity
from qcow2lint.passes import PASSES, Pass
from qcow2lint.passes.stored import stored_refcounts
from qcow2lint.reader import MAX_DEEP_BYTES, MAX_DEEP_PAYLOADS, ImageError, ImageFile, open_image
from qcow2lint.recordtype import Record
from qcow2lint.registry import (
    INTERNAL_ERROR,
    INTERNAL_ERROR_CODE,
    LazyCheck,
    Registry,
    Rule,
)
from qcow2lint.source import display_name, is_url
from qcow2lint.text import exception_text, format_size

__all__ = ["ImageContext", "ImageReport", "lint_path", "run_rules"]


#: What is known of an image whose header the reader could not follow
#: (:attr:`records.Image.readable` false): everything else was not read.
KNOWN_UNREAD = frozenset({"path", "file_size", "header", "readable", "problems"})


class UnreadImage:
    """The view rules get of an image whose header cannot be followed: the
    header, the file and the reader's problems, and :class:`NotRead` for
    every structure the reader did not read (a new structure of
    :class:`records.Image` is unread too, without a change here)."""

    __slots__ = ("_image",)

    def __init__(self, image: records.Image) -> None:
        self._image = image

    def __getattr__(self, name: str) -> Any:
        if name in KNOWN_UNREAD:
            return getattr(self._image, name)
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotRead(f"image.{name} was not read: the header cannot be followed")


def rule_view(image: records.Image) -> records.Image:
    """The image as rules see it: itself when it was read, else an
    :class:`UnreadImage` (typed as the Image it stands for)."""
    return image if image.readable else cast(records.Image, UnreadImage(image))


class ImageContext:
    """The engine's rule context (it follows :class:`qcow2lint.context.RuleContext`):
    read-only facts about the image, and the rule's options."""

    def __init__(self, image_file: ImageFile, options: Mapping[str, Any], budget: list[int]) -> None:
        self._file = image_file
        self._image = rule_view(image_file.image)
        self._options = MappingProxyType(dict(options))
        self._budget = budget

    @property
    def stored_refcounts(self) -> results.StoredRefcounts | None:
        """The refcounts stored on disk, decoded (read once per image)."""
        if not self._image.readable:
            raise NotRead("the refcounts were not read: the header cannot be followed")
        return stored_refcounts(self._file)

    @property
    def image(self) -> records.Image:
        """The whole image (for cross-structure facts); of an unreadable
        image, a view that raises :class:`NotRead` for what was not read."""
        return self._image

    @property
    def header(self) -> records.Header:
        """The image header."""
        return self._image.header

    @property
    def cluster_size(self) -> int:
        """Bytes per cluster (:class:`NotRead` when the header cannot be followed)."""
        if not self._image.readable:
            raise NotRead("the cluster size is unknown: the header cannot be followed")
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


@attrs.frozen(repr=False)
class PassFailed(Record):
    """A whole-image pass crashed; reported as an internal error."""

    failed: Pass
    message: str


def _records(
    image_file: ImageFile, scopes: set[str], passes: list[Pass], stats: dict[str, int] | None
) -> Iterator[object]:
    """Every record of the image whose type some enabled rule inspects, then
    the record of every pass (its figures merged into ``stats``)."""
    image = image_file.image
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
    # the whole-image passes are fed by the same pass over the L2 tables.
    if "RefcountBlock" in scopes:
        yield from image_file.refcount_blocks()
    deep = "CompressedCluster" in scopes
    live = list(passes)
    if live or deep or "L2Tables" in scopes:
        for batch in image_file.l2_batches():
            yield batch
            if deep:
                yield from image_file.compressed_clusters(batch)
            for running in list(live):
                try:
                    running.add(batch)
                except Exception as exc:  # never lose the rule findings to a pass
                    live.remove(running)
                    yield PassFailed(running, exception_text(exc))
        stopped = image_file.deep_stopped() if deep else None
        if stopped is not None:
            yield stopped
    for running in live:
        try:
            record = running.finish()
        except Exception as exc:
            yield PassFailed(running, exception_text(exc))
            continue
        if stats is not None and running.statistics:
            stats.update(getattr(record, "stats", {}))
        yield record


def _where(record: object) -> tuple[int, str]:
    offset = getattr(record, "file_offset", 0)
    if isinstance(record, records.L2Tables):
        offset = int(record.offsets[0]) if len(record.offsets) else 0
    return int(offset), str(getattr(record, "path", type(record).__name__))


def run_rules(
    image_file: ImageFile,
    config: Config,
    registry: Registry,
    stats: dict[str, int] | None = None,
    deep: bool = False,
    observe: Callable[[object], None] | None = None,
) -> list[Finding]:
    """Run every enabled rule over the image; findings sorted by offset, code.

    A whole-image pass (:data:`qcow2lint.passes.PASSES`) runs when a rule
    inspects its record, or when ``stats`` is given and the pass computes
    qemu-img check's figures (they are merged into ``stats``).  Rules on
    compressed payloads run only with ``deep`` (every payload is read).
    ``observe``, when given, sees every record the rules see, in the same
    order (the L2 batches and the passes' records among them), so that a
    caller can build its own view from the same single pass over the image.
    """
    image = image_file.image
    rules = [
        rule for rule in registry if config.rules[rule.name].enabled and (deep or rule.scope != "CompressedCluster")
    ]
    by_scope: dict[str, list[Rule]] = defaultdict(list)
    for rule in rules:
        by_scope[rule.scope].append(rule)
    cap = config.max_findings_per_rule or sys.maxsize
    budgets = {rule.name: [cap] for rule in rules}
    omitted: dict[str, int] = defaultdict(int)
    last_offset: dict[str, int] = {}
    crashed: set[str] = set()
    findings: list[Finding] = []
    contexts: dict[str, ImageContext] = {}
    checks: dict[str, Any] = {}  # each rule's check function, resolved once
    passes: list[Pass] = []
    # Rules on an image whose header cannot be followed see only what was
    # read of it; asking for more raises NotRead, and the rule is skipped.
    # Their findings are collected before any is kept (the image has only
    # a header and a few records), so a skipped rule keeps none.
    view = rule_view(image)
    if image.readable:
        for kind in PASSES:
            if kind.record.__name__ in by_scope or (stats is not None and kind.statistics):
                started = kind()
                try:
                    if started.start(image_file):
                        passes.append(started)
                except Exception as exc:
                    findings.append(_pass_failed(started, exception_text(exc)))

    for record in _records(image_file, set(by_scope), passes, stats):
        if observe is not None:
            observe(record)
        if isinstance(record, PassFailed):
            findings.append(_pass_failed(record.failed, record.message))
            continue
        if isinstance(record, results.DeepStopped):
            findings.extend(_deep_stopped(rule, record) for rule in by_scope.get("CompressedCluster", ()))
            continue
        for rule in by_scope.get(type(record).__name__, ()):
            if rule.name in crashed:
                continue
            settings = config.rules[rule.name]
            budget = budgets[rule.name]
            ctx = contexts.get(rule.name)
            if ctx is None:  # one context per rule per image, not per record
                ctx = contexts[rule.name] = ImageContext(image_file, settings.options, budget)
            try:
                check = checks.get(rule.name)
                if check is None:
                    check = checks[rule.name] = rule.check.load() if isinstance(rule.check, LazyCheck) else rule.check
                subject = view if record is image else record
                try:
                    items = check(subject, ctx) or ()
                    if not image.readable:
                        items = list(items)
                except NotRead:
                    continue
                for item in items:
                    if isinstance(item, Omitted):
                        omitted[rule.name] += item.count
                    elif budget[0] > 0:
                        budget[0] -= 1
                        last_offset[rule.name] = item.offset
                        findings.append(_stamp(rule, settings.severity, item))
                    else:
                        omitted[rule.name] += 1
            except Exception as exc:  # a crashing plugin is a finding, not a crash
                crashed.add(rule.name)
                offset, where = _where(record)
                findings.append(
                    Finding(
                        INTERNAL_ERROR,
                        INTERNAL_ERROR_CODE,
                        Severity.ERROR,
                        offset,
                        where,
                        f"rule {rule.name} ({rule.origin}) crashed on {where}: "
                        f"{exception_text(exc)}; its other findings for this image are skipped",
                    )
                )

    for rule in rules:
        if omitted.get(rule.name):
            findings.append(
                Finding(
                    rule.name,
                    rule.code,
                    config.rules[rule.name].severity,
                    last_offset.get(rule.name, 0),
                    "...",
                    f"and {omitted[rule.name]} more {rule.name} findings not shown "
                    f"(max-findings-per-rule is {config.max_findings_per_rule})",
                    omitted=omitted[rule.name],
                )
            )
    # The "and N more" finding stays last among its rule's findings.
    findings.sort(key=lambda f: (f.location == "...", f.sort_key()))
    return link_findings(findings, image_file)


def _stamp(rule: Rule, severity: Severity, item: Problem) -> Finding:
    """The finding for a rule's problem: the rule's identity, the problem's
    place, fact and root-cause hints."""
    return Finding(
        rule.name,
        rule.code,
        severity,
        item.offset,
        item.location,
        item.message,
        covers=item.covers,
        reads=item.reads,
        lost=item.lost,
        clusters=item.clusters,
        refs=item.refs,
        about=item.about,
        explains=item.explains,
    )


def link_findings(findings: list[Finding], image_file: ImageFile) -> list[Finding]:
    """Number the findings and link consequences to their root causes
    (:func:`qcow2lint.causes.link_consequences`); should the linking fail,
    the findings are still all reported, numbered and unlinked."""
    try:
        return link_consequences(findings, image_file)
    except Exception:  # noqa: BLE001 -- never lose findings to the linking
        return number(findings)


def _deep_stopped(rule: Rule, stopped: results.DeepStopped) -> Finding:
    """The warning that ``--deep`` reached its budget before every payload
    was judged (docs/cost-model.md): the check is incomplete, not the image
    wrong, whatever the rule's severity."""
    return Finding(
        rule.name,
        rule.code,
        Severity.WARNING,
        stopped.file_offset,
        stopped.path,
        f"--deep stopped after {stopped.payloads} compressed payloads (its budget: "
        f"{MAX_DEEP_PAYLOADS} payloads, {format_size(MAX_DEEP_BYTES)} read and decompressed); "
        f"{stopped.skipped_entries} compressed entries were not decompressed",
    )


def _pass_failed(failed: Pass, message: str) -> Finding:
    """The internal-error finding for a whole-image pass that crashed."""
    offset, where = _where(failed.record)
    return Finding(
        INTERNAL_ERROR,
        INTERNAL_ERROR_CODE,
        Severity.ERROR,
        offset,
        where,
        f"{failed.title} crashed ({message}); {failed.skips} were skipped",
    )


def lint_path(
    path: str | os.PathLike[str],
    config: Config,
    registry: Registry,
    want_stats: bool = False,
    deep: bool = False,
    *,
    remote: Any = None,
) -> ImageReport:
    """Read and lint one image file or URL (and compute qemu-img check's
    figures); ``remote``: storage options and timeout for a URL.  A URL's
    report names it without credentials."""
    name = os.fspath(path)
    if is_url(name):
        name = display_name(name)
    try:
        with open_image(path, remote) as image_file:
            stats: dict[str, int] | None = {} if want_stats else None
            findings = tuple(run_rules(image_file, config, registry, stats, deep))
            return ImageReport(name, findings, stats=stats or None)
    except ImageError as exc:
        return ImageReport(name, error=str(exc))
