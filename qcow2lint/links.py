"""Where the rule pages are: ``NAME.md`` under a base URL.

SARIF wants absolute URIs for a rule's ``helpUri`` and the tool's
``informationUri`` (the SARIF Multitool flags relative ones, SARIF1005), and
no public URL of the project is known, so none is invented.  The base is,
first that applies:

1. the configuration's ``docs-url`` (``--docs-url`` on the command line);
2. the ``QCOW2LINT_DOCS_URL`` environment variable;
3. the ``docs/rules/`` directory of the source checkout qcow2lint runs from
   (an editable install, or ``python -m qcow2lint`` in the repository), as a
   ``file://`` URI: the pages exist there;
4. none: the SARIF log then has no ``helpUri`` and no ``informationUri``
   (an installed wheel does not carry the pages).

The GitHub Action passes the absolute URL of the pages in the action's own
repository at the ref the workflow uses.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The environment variable that gives the base URL of the rule pages.
ENV_VAR = "QCOW2LINT_DOCS_URL"
#: The rule pages, relative to the repository's root.
PAGES_DIR = "docs/rules"


def checkout_pages() -> Path | None:
    """The ``docs/rules`` directory beside the package, in a source checkout."""
    folder = Path(__file__).resolve().parent.parent / PAGES_DIR
    return folder if (folder.parent / "rules.md").is_file() and folder.is_dir() else None


def docs_url(configured: str | None = None) -> str | None:
    """The base URL of the rule pages (see the module docstring), or None."""
    if configured:
        return configured
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env:
        return from_env
    folder = checkout_pages()
    return folder.as_uri() + "/" if folder is not None else None


def rule_url(base: str, name: str) -> str:
    """The page of rule ``name`` under the base URL ``base``.

    >>> rule_url("https://example.org/qcow2lint/docs/rules/", "l2-reserved-bits")
    'https://example.org/qcow2lint/docs/rules/l2-reserved-bits.md'
    >>> rule_url("https://example.org/qcow2lint/docs/rules", "dirty-bit-set")
    'https://example.org/qcow2lint/docs/rules/dirty-bit-set.md'
    """
    return f"{base if base.endswith('/') or not base else base + '/'}{name}.md"


def rules_index_url(base: str) -> str:
    """The rules index (``docs/rules.md``) for the rule pages' base URL.

    >>> rules_index_url("https://example.org/qcow2lint/docs/rules/")
    'https://example.org/qcow2lint/docs/rules.md'
    """
    return base.rstrip("/") + ".md"
