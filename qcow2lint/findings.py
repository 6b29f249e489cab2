"""The findings and report model: severities, findings, one image's report.

Plain data with no numpy and no reader: every renderer in
:mod:`qcow2lint.report` imports only this module.
"""

from __future__ import annotations

import enum
from typing import Protocol

import attrs

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


@attrs.frozen
class Problem:
    """What a rule yields: where, and the fact with the values that prove it.

    The engine, not the rule, stamps the rule's name, code and severity.
    """

    offset: int
    location: str
    message: str


@attrs.frozen
class Omitted:
    """What a rule yields for hits it did not spell out (over the cap)."""

    count: int


@attrs.frozen(order=False)
class Finding:
    """One reported problem, stamped with its rule's identity."""

    rule: str
    code: str
    severity: Severity
    offset: int
    location: str
    message: str

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
        }


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
