"""A picture of a qcow2 file: what every host cluster holds, the guest's
view of the disk, the figures users ask for, and the findings at their
offsets (``qcow2lint map``).

:func:`build_map` runs the ordinary lint over the image once and observes
it (:mod:`.analysis`); :mod:`.render` draws the result as JSON, PNG or SVG,
and :mod:`.page` as one self-contained HTML page.  :func:`run_map` is the
command: it takes the parsed options and returns the exit code.
"""

from __future__ import annotations

from qcow2lint.filemap.analysis import GUEST_STATES, KINDS, FileMap, MapBuilder
from qcow2lint.filemap.command import FORMATS, MapError, build_map, run_map

__all__ = ["FORMATS", "GUEST_STATES", "KINDS", "FileMap", "MapBuilder", "MapError", "build_map", "run_map"]
