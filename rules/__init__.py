"""qcow2lint's built-in rules, one rule per module.

They install as the package ``qcow2lint_rules`` and are registered in
``pyproject.toml`` through the ``qcow2lint.rules`` entry-point group, the
same door third-party plugins use.  Each module's docstring is the rule's
user documentation.
"""
