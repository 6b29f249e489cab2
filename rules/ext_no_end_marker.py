"""The header extensions are not closed by an end-of-extensions marker.

The extension list ends with an extension of type 0 and length 0 (spec,
"Header extensions").  QEMU always writes one.  Without it the walk runs on
to the end of the extension area (backing_file_offset or the end of cluster
0), or to the end of the file.  When the walk stopped at an overrunning
extension, ext-overruns-area reports that instead; when the area is empty or
inverted (backing_file_offset at or before its start, so there is nothing to
walk and no room for a marker), backing-name-overlaps-header or
header-length-too-large reports the layout.

QEMU: silent; it stops at the end of the area (or reads zeros past the end
of the file, which act as an end marker).  Repair: a read-write header
update (e.g. `qemu-img amend -o compat=1.1`) rewrites the area with a
marker.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import ExtensionArea
from qcow2lint.rulekit import extension_area_limit, extensions_end

NAME = "ext-no-end-marker"
CODE = "Q0303"
SEVERITY = "info"
SCOPE = ExtensionArea


def check(area, ctx):
    """Flag a walk that ended without a type-0 extension."""
    if area.end_marker is not None or area.stop == "overrun" or area.start >= area.end:
        return
    count = len(ctx.image.extensions)
    if area.stop == "eof":
        yield Problem(
            min(extensions_end(ctx.image), ctx.file_size),
            "extensions",
            f"the file ends at {ctx.file_size:#x}, after {count} header extensions and before an "
            "end-of-extensions marker",
        )
    else:
        yield Problem(
            min(extensions_end(ctx.image), area.end),
            "extensions",
            f"no end-of-extensions marker: {count} header extensions fill the extension area "
            f"{area.start:#x}..{area.end:#x} up to {extension_area_limit(ctx.header)}",
        )
