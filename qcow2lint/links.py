"""Where the rule pages are: ``docs/rules/NAME.md`` under a base URL.

The base is the configuration's ``docs-url`` (``--docs-url`` on the command
line).  By default it is ``docs/rules/``, the pages in this repository as a
reference relative to the repository's root: no public URL of the project
is known, so none is invented.  The GitHub Action passes the absolute URL of
the pages in the action's own repository and ref.
"""

from __future__ import annotations

#: The default base URL of the rule pages.
DEFAULT_DOCS_URL = "docs/rules/"


def rule_url(base: str, name: str) -> str:
    """The page of rule ``name`` under the base URL ``base``.

    >>> rule_url("docs/rules/", "l2-reserved-bits")
    'docs/rules/l2-reserved-bits.md'
    >>> rule_url("https://example.org/qcow2lint/docs/rules", "dirty-bit-set")
    'https://example.org/qcow2lint/docs/rules/dirty-bit-set.md'
    """
    return f"{base if base.endswith('/') or not base else base + '/'}{name}.md"


def rules_index_url(base: str) -> str:
    """The rules index (``docs/rules.md``) for the rule pages' base URL.

    >>> rules_index_url("docs/rules/")
    'docs/rules.md'
    """
    return base.rstrip("/") + ".md"
