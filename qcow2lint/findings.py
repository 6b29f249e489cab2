"""The findings and report model: severities, findings, one image's report.

Plain data with no numpy and no reader: every renderer in
:mod:`qcow2lint.report` imports only this module.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol

import attrs

from qcow2lint.recordtype import Record

#: The engine's own pseudo-rule for a rule (or a whole-image pass) that crashed.
INTERNAL_ERROR = "internal-error"
INTERNAL_ERROR_CODE = "Q0000"


class Severity(enum.IntEnum):
    """How bad a finding is; higher is worse."""

    INFO = 1
    WARNING = 2
    ERROR = 3

    def __str__(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Severity:
        """The severity called ``name`` (``error``, ``warning``, ``info``)."""
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValueError(f"unknown level {name!r} (use error, warning or info)") from None


class RuleMeta(Protocol):
    """What a report needs to know about a rule (SARIF descriptors, JUnit
    test cases); a loaded registry rule has these attributes."""

    @property
    def name(self) -> str: ...

    @property
    def code(self) -> str: ...

    @property
    def severity(self) -> Severity: ...

    @property
    def doc(self) -> str: ...


@attrs.frozen(repr=False)
class Problem(Record):
    """What a rule yields: where, and the fact with the values that prove it.

    The engine, not the rule, stamps the rule's name, code and severity.
    """

    offset: int
    location: str
    message: str
    #: Root-cause hints (see docs/root-causes.md).  ``covers``: the byte
    #: range [start, end) of a structure this problem judges unusable, as
    #: QEMU reads it; findings located inside it follow from this one.
    covers: tuple[int, int] | None = None
    #: How QEMU reads the covered bytes ("l1", "l2", "bitmaps" or
    #: "bitmap-table" entries), so the engine can find the references that
    #: exist only because of the misreading.
    reads: str | None = None
    #: Entries QEMU should read but does not: (offset, count, kind), kind
    #: "l1", "l2", "snapshots", "bitmaps" or "bitmap-table"; leaks of the
    #: clusters they reference follow from this problem.
    lost: tuple[int, int, str] | None = None
    #: The clusters [first, last] a refcount or overlap problem is about, and
    #: which way: "missing" (refcount above the references: a leak) or
    #: "extra" (a reference the refcounts or layout do not allow).
    clusters: tuple[int, int] | None = None
    refs: str | None = None
    #: The file offset of the structure the problem is about: the L2 table
    #: an L2 entry lies in, the L2 table an L1 entry names, the table a
    #: header field places.  It follows from a root cause whose ``covers``
    #: starts there (the root judges that structure unusable), and from a
    #: root whose misread L1 entries alone name that L2 table.
    about: int | None = None
    #: Clusters [first, last] whose refcount findings (either way) follow
    #: from this problem: the refcounts of a range without a refcount block
    #: read as 0; a data cluster mapped twice has one reference too many.
    explains: tuple[int, int] | None = None


@attrs.frozen(repr=False)
class Omitted(Record):
    """What a rule yields for hits it did not spell out (over the cap)."""

    count: int


@attrs.frozen(order=False, repr=False)
class Finding(Record):
    """One reported problem, stamped with its rule's identity."""

    rule: str
    code: str
    severity: Severity
    offset: int
    location: str
    message: str
    #: The finding's number within its image report (1, 2, ... in report
    #: order), the target of ``caused_by``; 0 before the engine numbers them.
    id: int = 0
    #: The ``id`` of the root-cause finding this one follows from, else None.
    caused_by: int | None = None
    #: For the final "and N more" finding of a capped rule: N (the findings
    #: it stands for); 0 for an ordinary finding.
    omitted: int = 0
    #: The root-cause hints of the rule's :class:`Problem` (not rendered).
    covers: tuple[int, int] | None = attrs.field(default=None, eq=False, repr=False)
    reads: str | None = attrs.field(default=None, eq=False, repr=False)
    lost: tuple[int, int, str] | None = attrs.field(default=None, eq=False, repr=False)
    clusters: tuple[int, int] | None = attrs.field(default=None, eq=False, repr=False)
    refs: str | None = attrs.field(default=None, eq=False, repr=False)
    about: int | None = attrs.field(default=None, eq=False, repr=False)
    explains: tuple[int, int] | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def weight(self) -> int:
        """How many findings this one stands for (N for "and N more")."""
        return self.omitted or 1

    def sort_key(self) -> tuple[int, str, str]:
        """Findings sort by offset, then code."""
        return (self.offset, self.code, self.location)

    def to_json(self) -> dict[str, object]:
        """The finding as a JSON object."""
        return {
            "rule": self.rule,
            "code": self.code,
            "severity": str(self.severity),
            "offset": self.offset,
            "location": self.location,
            "message": self.message,
            "id": self.id,
            "caused_by": self.caused_by,
            **({"omitted": self.omitted} if self.omitted else {}),
        }


@attrs.frozen(repr=False)
class ImageReport(Record):
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
        """True findings per severity: every finding, listed or not (the
        "and N more" finding of a capped rule counts for its N)."""
        counts = {str(s): 0 for s in sorted(Severity, reverse=True)}
        for finding in self.findings:
            counts[str(finding.severity)] += finding.weight
        return counts

    @property
    def totals(self) -> dict[str, int]:
        """The true per-severity totals (:meth:`counts`)."""
        return self.counts()

    def shown(self) -> int:
        """How many findings are listed one by one (not the "and N more")."""
        return sum(1 for finding in self.findings if not finding.omitted)

    def roots(self) -> tuple[Finding, ...]:
        """The findings that follow from no other: the root causes."""
        return tuple(f for f in self.findings if f.caused_by is None)

    def follow_on(self) -> dict[int, int]:
        """Per root-cause id, how many findings follow from it (weighted)."""
        counts: dict[int, int] = {}
        for finding in self.findings:
            if finding.caused_by is not None:
                counts[finding.caused_by] = counts.get(finding.caused_by, 0) + finding.weight
        return counts

    def keeping(self, kept: Iterable[Finding]) -> ImageReport:
        """This report with only ``kept`` of its findings (per-file-ignores,
        baselines): a finding whose root cause was dropped becomes a root."""
        findings = tuple(kept)
        if len(findings) == len(self.findings):
            return self
        ids = {f.id for f in findings}
        findings = tuple(
            attrs.evolve(f, caused_by=None) if f.caused_by is not None and f.caused_by not in ids else f
            for f in findings
        )
        return attrs.evolve(self, findings=findings)
