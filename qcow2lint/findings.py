"""Findings and severities."""

from __future__ import annotations

import enum

import attrs


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
