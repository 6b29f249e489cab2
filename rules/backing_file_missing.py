"""The backing file the image names does not exist.

An overlay reads every cluster it does not allocate from its backing file
(spec, "backing_file_offset"; spec, "Header").  The rule resolves the name
the way QEMU does (bdrv_get_full_backing_filename): a relative name is
relative to the directory of the image file, an absolute name is used as it
is.  A name with a protocol prefix (`json:`, `nbd:`, `http:`, ...) is not a
file name and is skipped (backing-file-unsafe-name judges it), as is an
empty name (backing-name-empty).  This is the one rule that looks at the
filesystem: it asks whether the resolved path exists (os.stat, following
symbolic links as QEMU does) and never opens, reads or lists anything the
image names.  An image read from a URL is not looked up at all: no local
path is looked at for a remote image (docs/remote.md).

QEMU: cannot open the overlay ("Could not open backing file: Could not open
'NAME': No such file or directory"); `qemu-img check`, `qemu-img convert`
and qemu-io fail the same way, while `qemu-img info` (without
`--backing-chain`) still shows the image.  Repair: put the backing file where the name points, or
`qemu-img rebase -u -b NEW -F FMT IMAGE` to name where it is now.

Option `check-exists` (default true): false silences the rule, for
pipelines that check an overlay apart from its base; naming the rule in
`--select` or `--extend-select` while a configuration sets it false is a
usage error that says to set `check-exists: true`.  The `untrusted`
preset disables the rule: an untrusted image must not make the linter probe
host paths.
"""

import os

from qcow2lint.findings import Problem
from qcow2lint.records import Header
from qcow2lint.rulekit import protocol_prefix, qemu_name, shown
from qcow2lint.source import is_url

NAME = "backing-file-missing"
CODE = "Q0393"
SEVERITY = "warning"
SCOPE = Header
OPTIONS = {"check-exists": True}
#: With these option values the rule reports nothing (qcow2lint.idle).
SILENT_WITH = {"check-exists": False}
QEMU_REFUSES = ("Could not open backing file",)


def check(header, ctx):
    """Flag a backing file name that resolves to no existing path."""
    if not ctx.options["check-exists"] or not header.backing_file_offset or not ctx.image.backing_file_name:
        return
    if is_url(ctx.image.path):
        return  # a remote image: no local path is looked at (docs/remote.md)
    name = qemu_name(ctx.image.backing_file_name)
    if not name or protocol_prefix(name) is not None:
        return
    path = os.path.join(os.path.dirname(os.fsencode(ctx.image.path)), name)
    try:
        os.stat(path)
    except (OSError, ValueError):  # ValueError: a name too odd for the OS to look up
        yield Problem(
            header.backing_file_offset,
            "backing_file_name",
            f"backing file {shown(name, 256)} does not exist (looked for {shown(path, 256)}); "
            "QEMU cannot open the image without it",
        )
