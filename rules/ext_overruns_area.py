"""A header extension runs past the end of the extension area.

Header extensions live between the header and the end of the extension area:
backing_file_offset when the image has a backing file, else the end of
cluster 0 (spec, "Header extensions").  An extension whose 8-byte
type/length framing or whose data (length bytes, without the padding)
crosses that end overruns it; so does an end-of-extensions marker whose 8
bytes cross it.  The reader stops the walk at the first overrun, as QEMU
does.

QEMU: refuses to open the image ("Header extension too large"), also when
the extension runs into the backing file name (backing-name-overlaps-header
reports that side).  Repair: restore the extension's real length by hand
(qemu-img cannot open the image).
"""

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import ExtensionArea
from qcow2lint.rulekit import extension_area_limit, extension_label, field_root

NAME = "ext-overruns-area"
CODE = "Q0301"
SEVERITY = "error"
SCOPE = ExtensionArea
QEMU_REFUSES = ("Header extension too large",)


def check(area, ctx):
    """Flag the extension or end marker that crosses the end of the area."""
    limit = f"the end of the extension area at {area.end:#x} ({extension_area_limit(ctx.header)})"
    for ext in ctx.image.extensions:
        label = extension_label(ext.magic)
        if ext.data_offset > area.end:
            yield Problem(
                ext.file_offset,
                ext.path,
                f"the type and length of the {label} at {ext.file_offset:#x} run past {limit}",
            )
        elif ext.overruns_area:
            yield field_root(
                Problem(
                    ext.field_offset("length"),
                    f"{ext.path}.length",
                    f"the {label} at {ext.file_offset:#x} has length {ext.length}: its data runs to "
                    f"{ext.data_offset + ext.length:#x}, past {limit}",
                ),
                4,
            )
    if area.end_marker is not None and area.end_marker + spec.EXT_FRAMING_SIZE > area.end:
        yield Problem(
            area.end_marker,
            "extensions.end_marker",
            f"the end-of-extensions marker at {area.end_marker:#x} runs to {area.end_marker + spec.EXT_FRAMING_SIZE:#x}, past {limit}",
        )
