"""qcow2lint's built-in rules, one rule per module.

They install as the package ``qcow2lint_rules``, registered once in
``pyproject.toml`` (entry-point group ``qcow2lint.rule_packages``): every
module here whose name does not start with ``_`` is a rule, read by the
registry without importing it.  Each module's docstring is the rule's user
documentation.
"""
