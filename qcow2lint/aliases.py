"""Retired rule names, and the rule that reports their defect now.

A rule is renamed when its name said something else than what it checks,
and retired when another rule reported the same defect at the same place
(one defect, one finding).  The old names keep working wherever a user
wrote them: in configuration files (``rules:``, ``per-file-ignores``),
``--select``/``--ignore`` and baselines.  :meth:`Registry.get
<qcow2lint.registry.Registry.get>` resolves them, so every lookup by name
or code does; baselines map their entries here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["MERGED", "RENAMED", "RETIRED", "current_name"]

#: Old name -> new name of the same rule (same code, same findings).
RENAMED: Mapping[str, str] = MappingProxyType(
    {
        # It flags any refcount other than 1, 0 included.
        "metadata-refcount-gt-one": "metadata-refcount-not-one",
    }
)

#: Retired rule (name and code) -> the rule that reported the same defect
#: at the same place, and reports it alone now.
MERGED: Mapping[str, str] = MappingProxyType(
    {
        "overlap-zero-length-bitmap-dir": "autoclear-bitmaps-without-ext",
        "Q1202": "autoclear-bitmaps-without-ext",
    }
)

#: Every old name or code -> the rule it resolves to.
RETIRED: Mapping[str, str] = MappingProxyType({**RENAMED, **MERGED})


def current_name(key: str) -> str:
    """The rule name or code a possibly retired ``key`` stands for today
    (``key`` itself when it is not retired)."""
    return RETIRED.get(key, key)
