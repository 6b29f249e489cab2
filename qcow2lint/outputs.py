"""Files qcow2lint writes on request (``-o``, ``--generate-baseline``): each
is refused, with one line, before any work is done."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["output_problem"]


def _reason(exc: OSError) -> str:
    return "permission denied" if exc.errno in (errno.EACCES, errno.EPERM) else exc.strerror or str(exc)


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written (``is a directory``, ``no such
    directory: DIR``, ``permission denied``), or None.  Nothing is created:
    the answer comes from looking at the path and its directory, which may
    themselves be unsearchable."""
    parent = path.parent if str(path.parent) else Path(".")
    try:
        exists = True
        if stat.S_ISDIR(os.stat(path).st_mode):
            return "is a directory"
    except (FileNotFoundError, NotADirectoryError):
        exists = False
    except OSError as exc:
        return _reason(exc)
    try:
        if not stat.S_ISDIR(os.stat(parent).st_mode):
            return f"no such directory: {parent}"
    except (FileNotFoundError, NotADirectoryError):
        return f"no such directory: {parent}"
    except OSError as exc:
        return _reason(exc)
    if not os.access(parent, os.W_OK | os.X_OK) or (exists and not os.access(path, os.W_OK)):
        return "permission denied"
    return None
