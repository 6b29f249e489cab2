"""The backing file name overlaps the header or the header extensions.

The backing file name must be stored after the end of the header extension
area, end marker included (spec, "Header extensions": the space between the
end of the extensions and the end of cluster 0).  It overlaps when
backing_file_offset is below the start of the extension area (header_length,
72 for version 2) or below the end of the extensions as they lie in the
file: after the end marker, or after the last extension's padded data when
there is no marker.  A name that starts right after the last extension
without an end marker does not overlap anything; ext-no-end-marker reports
the missing marker.

QEMU: only checks that the offset is inside cluster 0.  It ends the
extension walk at backing_file_offset, so an extension or end marker that
reaches into the name gives "Header extension too large"
(ext-overruns-area), and a name inside the header reads header bytes as
the name (often an empty name: no backing file).  Repair: `qemu-img rebase
-u -b BACKING -F FMT` rewrites the header with the name in place, once
the image opens.
"""

from qcow2lint.findings import Problem
from qcow2lint.records import ExtensionArea
from qcow2lint.rulekit import extensions_end

NAME = "backing-name-overlaps-header"
CODE = "Q0312"
SEVERITY = "error"
SCOPE = ExtensionArea
STRICTER_THAN_QEMU = (
    "The specification keeps the backing file name out of the header and its extensions. "
    "A name placed on them is read from header or extension bytes: QEMU opens a different "
    "backing file than the one written, or none, and the guest sees other data. `qemu-img "
    "check` only checks that the offset is inside cluster 0."
)


def check(area, ctx):
    """Flag a backing file name that starts inside the header or extensions."""
    header = ctx.header
    offset = header.backing_file_offset
    if not offset or offset > ctx.cluster_size:
        return
    used = extensions_end(ctx.image)
    if offset < area.start:
        what = "72-byte version 2 header" if header.version == 2 else f"header (header_length {header.header_length})"
        yield Problem(
            header.field_offset("backing_file_offset"),
            "header.backing_file_offset",
            f"backing file name at {offset:#x} lies inside the {what}, which ends at {area.start:#x}",
        )
    elif offset < used:
        what = "its end marker included" if area.end_marker is not None else "the last one's padding included"
        yield Problem(
            header.field_offset("backing_file_offset"),
            "header.backing_file_offset",
            f"backing file name at {offset:#x} lies inside the header extensions, which end at {used:#x} ({what})",
        )
