"""Baselines: accept today's findings, report only new ones.

Images cannot carry inline suppression comments, so a baseline file records
the fingerprints of the findings a run produced.  A fingerprint is the rule
name, the image path and the structure path (``l2@0x4000[17]``,
``header.padding``) -- not the byte offset or the message, so a baseline
survives changes that do not touch the finding (a value named in the
message, a re-ordering of the output).  The image path is posix and relative
to a root: the command line uses the **baseline file's directory** (images
outside it get ``../`` paths), so the same baseline works from any working
directory and on every checkout; the library functions default to the
working directory (an image outside it keeps its absolute path).

The file is JSON, versioned and sorted so that it diffs well::

    {
      "tool": "qcow2lint",
      "version": 1,
      "findings": [
        {"image": "images/a.qcow2", "rule": "l2-reserved-bits", "location": "l2@0x4000[0]", "count": 1}
      ]
    }

``count`` is how many findings share the fingerprint: a baseline holding N
of them lets N findings pass, and the (N+1)th is new.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qcow2lint.aliases import MERGED, RENAMED

if TYPE_CHECKING:
    from qcow2lint.findings import Finding, ImageReport

BASELINE_VERSION = 1
TOOL = "qcow2lint"

Fingerprint = tuple[str, str, str]


class BaselineError(Exception):
    """The baseline cannot be read or is malformed; the message is one line."""


def image_key(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The image path of a fingerprint: posix, ``./`` and ``..`` folded,
    relative to ``root`` (default: the working directory) when inside it.

    With an explicit ``root`` (the baseline file's directory) every image
    path is relative to it, ``../`` included, so the key does not depend on
    the working directory; without one an image outside the working
    directory keeps its absolute path.
    """
    given = os.fspath(path)
    if root is not None:
        try:
            relative = os.path.relpath(os.path.abspath(given), os.path.abspath(os.fspath(root)))
        except ValueError:  # another drive
            relative = os.path.normpath(os.path.abspath(given))
        return relative.replace(os.sep, "/")
    base = os.getcwd()
    if os.path.isabs(given):
        absolute = os.path.normpath(given)
        try:
            relative = os.path.relpath(absolute, base)
        except ValueError:  # another drive
            relative = os.pardir
        key = absolute if relative == os.pardir or relative.startswith(os.pardir + os.sep) else relative
    else:
        key = os.path.normpath(given)
    return key.replace(os.sep, "/")


def fingerprint(
    report_path: str | os.PathLike[str], finding: Finding, root: str | os.PathLike[str] | None = None
) -> Fingerprint:
    """``(image, rule, structure path)`` of one finding."""
    return (image_key(report_path, root), finding.rule, finding.location)


def _fingerprints(reports: Iterable[ImageReport], root: str | os.PathLike[str] | None) -> Counter[Fingerprint]:
    counts: Counter[Fingerprint] = Counter()
    for report in reports:
        for finding in report.findings:
            counts[fingerprint(report.path, finding, root)] += 1
    return counts


def generate_baseline(reports: Iterable[ImageReport], root: str | os.PathLike[str] | None = None) -> str:
    """The baseline file (JSON text) accepting every finding of ``reports``.

    Images that could not be read contribute nothing: an unreadable image is
    never baselined away.
    """
    counts = _fingerprints(reports, root)
    entries = [
        {"image": image, "rule": rule, "location": location, "count": count}
        for (image, rule, location), count in sorted(counts.items())
    ]
    document = {"tool": TOOL, "version": BASELINE_VERSION, "findings": entries}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def parse_baseline(text: str, source: str = "baseline") -> Counter[Fingerprint]:
    """The fingerprint counts of a baseline file; BaselineError when malformed."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            f"{source}: not a qcow2lint baseline: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(document, dict) or document.get("tool") != TOOL or "findings" not in document:
        raise BaselineError(
            f"{source}: not a qcow2lint baseline (expected a JSON object with "
            f'"tool": "{TOOL}" and "findings"; write one with --generate-baseline)'
        )
    version = document.get("version")
    if version != BASELINE_VERSION:
        raise BaselineError(
            f"{source}: baseline version {version!r} is not supported (this qcow2lint reads version "
            f"{BASELINE_VERSION}); regenerate it with --generate-baseline"
        )
    entries = document["findings"]
    if not isinstance(entries, list):
        raise BaselineError(f'{source}: "findings" must be a list, not {type(entries).__name__}')
    counts: Counter[Fingerprint] = Counter()
    merged: Counter[Fingerprint] = Counter()
    for index, entry in enumerate(entries):
        image, rule, location = _entry(source, index, entry)
        count = _count(source, index, entry)
        if rule in MERGED:
            # A retired duplicate: its findings were those of the rule that
            # reports the defect now, which the baseline has beside them.
            key = (image, MERGED[rule], location)
            merged[key] = max(merged[key], count)
        else:
            counts[(image, RENAMED.get(rule, rule), location)] += count
    for key, count in merged.items():
        counts[key] = max(counts[key], count)
    return counts


def _entry(source: str, index: int, entry: Any) -> Fingerprint:
    if not isinstance(entry, dict):
        raise BaselineError(f"{source}: findings[{index}] must be an object, not {type(entry).__name__}")
    values = []
    for key in ("image", "rule", "location"):
        value = entry.get(key)
        if not isinstance(value, str):
            raise BaselineError(f"{source}: findings[{index}]: {key!r} must be a string, got {value!r}")
        values.append(value)
    return (values[0], values[1], values[2])


def _count(source: str, index: int, entry: dict[str, Any]) -> int:
    count = entry.get("count", 1)
    if type(count) is not int or count < 1:
        raise BaselineError(f"{source}: findings[{index}]: 'count' must be a whole number >= 1, got {count!r}")
    return count


def read_baseline(path: str | os.PathLike[str]) -> str:
    """The text of a baseline file; BaselineError (one line) when unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"{os.fspath(path)}: cannot read the baseline: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BaselineError(f"{os.fspath(path)}: not a qcow2lint baseline: not UTF-8 text") from None


class BaselineFilter:
    """Drops the findings a baseline accepts, one report at a time (so that
    reports can be printed as they come); the counts are shared across
    reports: each baseline entry lets ``count`` findings pass, in order."""

    def __init__(self, text: str, root: str | os.PathLike[str] | None = None, source: str = "baseline") -> None:
        self.remaining = parse_baseline(text, source)
        self.root = root
        #: Findings dropped so far.
        self.suppressed = 0
        #: Image keys of the reports seen (checked images, read or not).
        self.seen: set[str] = set()
        #: Image keys of the reports that could not be read.
        self.unreadable: set[str] = set()

    def __call__(self, report: ImageReport) -> ImageReport:
        """``report`` without the findings the baseline still accepts."""
        image = image_key(report.path, self.root)
        self.seen.add(image)
        if report.error is not None:
            self.unreadable.add(image)
        kept = []
        for finding in report.findings:
            key = fingerprint(report.path, finding, self.root)
            if self.remaining[key] > 0:
                self.remaining[key] -= 1
                self.suppressed += 1
            else:
                kept.append(finding)
        return report.keeping(kept)

    def stale(self) -> int:
        """Findings the baseline accepts in the images checked (and read) so
        far that no finding used: fixed, or moved to another structure."""
        return sum(
            count
            for (image, _, _), count in self.remaining.items()
            if count > 0 and image in self.seen and image not in self.unreadable
        )
