"""``Record``: the base of every attrs record class, with one shared repr.

attrs compiles a ``__repr__`` for every class it makes, a third of the cost
of making one; qcow2lint defines 44 record classes, all imported on every
run, so their compiled reprs were 6 ms of each check's start-up (issue 13).
Record classes are made with ``@attrs.frozen(repr=False)`` and derive from
:class:`Record`, whose ``__repr__`` writes what attrs' own would: the class
name, then ``name=value`` for every attribute shown in reprs.
"""

from __future__ import annotations

import attrs


class Record:
    """A record: an attrs class made with ``repr=False``."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = []
        for field in attrs.fields(type(self)):  # type: ignore[arg-type]  # every subclass is an attrs class
            if field.repr:
                value = getattr(self, field.name)
                shown.append(f"{field.name}={field.repr(value) if callable(field.repr) else repr(value)}")
        name = type(self).__qualname__.rsplit(">.", 1)[-1]  # as attrs: no "<locals>." path
        return f"{name}({', '.join(shown)})"
