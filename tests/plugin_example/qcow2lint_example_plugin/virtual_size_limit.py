"""The image's virtual size exceeds a site limit.

An example of a site policy written as a plugin: images larger than
`max-size` bytes are flagged.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Header

NAME = "example-virtual-size-limit"
CODE = "X9001"
SEVERITY = "warning"
SCOPE = Header
OPTIONS = {"max-size": 1 << 40}


def check(header, ctx):
    """Flag a virtual size above the configured limit."""
    limit = ctx.options["max-size"]
    if header.size > limit:
        yield Problem(24, "header.size", f"virtual size {header.size} exceeds the site limit {limit}")
