"""Helpers shared by the CI report formats (SARIF, GitHub, GitLab, JUnit)."""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath, PureWindowsPath
from urllib.parse import quote

from qcow2lint import baseline
from qcow2lint.findings import Finding, ImageReport

#: A table entry: ``l1[3]``, ``l2@0x50000[17]``, ``reftable[2]``,
#: ``bitmaps[0](daily).table[3]``, ``snapshots[0](1).l1[5]``: 8 bytes.
_TABLE_ENTRY = re.compile(r"(?:^|\.)(?:l1|l2@0x[0-9a-fA-F]+|reftable|table)\[\d+\]$")
#: The ``location`` of the final "and N more ..." finding of a capped rule.
OMITTED_LOCATION = "..."


def byte_length(finding: Finding) -> int:
    """How many bytes a finding's region covers.

    8 for a 64-bit table entry (L1, L2, refcount table, bitmap table,
    snapshot L1 table), else 1: the finding points at the first byte of the
    field or structure it names (its extent is in the structure path).
    """
    return 8 if _TABLE_ENTRY.search(finding.location) else 1


def fingerprint(path: str, finding: Finding) -> str:
    """The stable identity of a finding across runs: sha256 of the identity a
    baseline uses (image path, rule, structure path; not the offset, not the
    message)."""
    data = "\0".join(baseline.fingerprint(path, finding)).encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()


def unique_fingerprint(finding: Finding, path: str) -> str:
    """A fingerprint that also covers the offset: one per finding of a run."""
    data = "\0".join((finding.rule, path, finding.location, str(finding.offset))).encode("utf-8", "surrogateescape")
    return hashlib.sha256(data).hexdigest()


def repository_path(path: str) -> str:
    """An image path as CI services name a file of the repository: ``./``
    segments dropped (``qcow2lint check .`` finds ``./images/a.qcow2``;
    GitHub and GitLab attach a finding only to ``images/a.qcow2``).

    >>> repository_path("./images/./a.qcow2"), repository_path("/srv/a.qcow2"), repository_path("images/*.vmdk")
    ('images/a.qcow2', '/srv/a.qcow2', 'images/*.vmdk')
    """
    if not path.startswith("./") and "/./" not in path:
        return path
    return str(PurePosixPath(path))


def artifact_uri(path: str) -> str:
    """A URI reference for an image path: a relative path stays relative
    (percent-escaped, ``./`` dropped), an absolute one becomes a ``file://``
    URI; a URL (a remote image, named without credentials) is its own URI."""
    from qcow2lint.source import is_url

    if is_url(path):
        return path
    win = PureWindowsPath(path)
    if win.drive:  # C:\\images\\a.qcow2
        return win.as_uri() if win.is_absolute() else quote(win.as_posix(), safe="/", errors="surrogateescape")
    posix = PurePosixPath(path)
    if posix.is_absolute():
        return posix.as_uri()
    return quote(str(posix), safe="/", errors="surrogateescape")


def follow_on_note(report: ImageReport, finding: Finding) -> str:
    """`` (+N follow-on findings)`` for a root cause with consequences, else
    empty: the CI formats list root causes only and fold their consequences
    into this count (the JSON and SARIF reports and ``--show-all`` list them)."""
    count = report.follow_on().get(finding.id, 0)
    return f" (+{count} follow-on finding{'s' if count != 1 else ''})" if count else ""
