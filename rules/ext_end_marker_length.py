"""The end-of-extensions marker has a length that reaches past the extension area.

The extension list ends with an extension of type 0 and length 0 (spec,
"Header extensions").  QEMU reads each extension's type and length and
checks the length against the rest of the extension area before it looks
at the type, so it checks the end marker's length too: a marker whose
length field would carry its data past the end of the area (backing_file_offset
when set, else the end of cluster 0) stops the open.  A non-zero length
that stays inside the area is ignored, as is everything after the marker.
The standard dump stops at the marker and does not show its length.

QEMU: refuses to open the image ("Header extension too large").  Repair:
set the marker's length (the 4 bytes after its zero type) back to 0 by hand
(qemu-img cannot open the image).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import ExtensionArea
from qcow2lint.rulekit import extension_area_limit

NAME = "ext-end-marker-length"
CODE = "Q0314"
SEVERITY = "error"
SCOPE = ExtensionArea
QEMU_REFUSES = ("Header extension too large",)


def check(area, ctx):
    """Flag an end marker whose length reaches past the end of the area."""
    if area.end_marker is None:
        return
    data = area.end_marker + spec.EXT_FRAMING_SIZE
    # A marker whose own 8 bytes cross the end is ext-overruns-area's.
    if data <= area.end and area.end_marker_length > area.end - data:
        yield Problem(
            area.end_marker + 4,
            "extensions.end_marker.length",
            f"the end-of-extensions marker at {area.end_marker:#x} has length {area.end_marker_length}: "
            f"it reaches {data + area.end_marker_length:#x}, past the end of the extension area at "
            f"{area.end:#x} ({extension_area_limit(ctx.header)})",
        )
