"""qcow2lint's cache: small files in ``$XDG_CACHE_HOME/qcow2lint/`` (default
``~/.cache/qcow2lint/``) that spare a later run work whose answer has not
changed.  Today it holds one kind of entry: the index of installed rule
plugins (reading every distribution's metadata costs more than the rest of
loading the rules).

Each entry is one file.  Its name is a digest of its full key, and the file
holds the full key too, so an entry answers only the question it was
written for.  The key is what the caller passes (for the plugin index: every
distribution's name and the size and modification time of its entry-point
list) plus everything else that could change the answer: the interpreter
(implementation, version, executable), ``sys.flags.optimize`` and
qcow2lint's version.  A file that cannot be read or does not hold what it
should is ignored (and rewritten); a cache that cannot be written is no
cache.  Writing keeps at most :data:`KEPT` entries, the most recently
written, and removes the files of the cache's earlier formats.

``QCOW2LINT_NO_CACHE`` set to anything but empty or ``0`` turns the cache off:
nothing is read or written.
"""

from __future__ import annotations

import marshal
import os
import sys
from typing import Any

from qcow2lint import __version__

#: The environment variable that turns the cache off.
DISABLE = "QCOW2LINT_NO_CACHE"
#: How many entries the cache directory keeps.
KEPT = 8
#: Bumped when what an entry holds changes shape.
FORMAT = 1
_SUFFIX = f".v{FORMAT}.marshal"


def directory() -> str | None:
    """Where the cache lives, or None when it is turned off.

    ``$XDG_CACHE_HOME`` when it is an absolute path (the XDG base directory
    specification says to ignore a relative one), else ``~/.cache``."""
    if os.environ.get(DISABLE, "") not in ("", "0"):
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "qcow2lint")


def _full_key(kind: str, key: Any) -> tuple[Any, ...]:
    implementation = sys.implementation
    return (
        kind,
        implementation.name,
        implementation.cache_tag,
        sys.version,
        sys.executable,
        sys.flags.optimize,
        __version__,
        key,
    )


def _path(folder: str, kind: str, full_key: tuple[Any, ...]) -> str:
    import zlib

    # repr, not marshal: marshal's output depends on which objects are shared.
    digest = zlib.crc32(repr(full_key).encode("utf-8", "backslashreplace"))
    return os.path.join(folder, f"{kind}-{digest:08x}{_SUFFIX}")


def load(kind: str, key: Any) -> Any:
    """The value stored for ``key`` (marshal-able) among ``kind``'s entries,
    or None when there is none (or the cache is off)."""
    folder = directory()
    if folder is None:
        return None
    full_key = _full_key(kind, key)
    try:
        with open(_path(folder, kind, full_key), "rb") as file:
            stored = marshal.loads(file.read())  # one read: marshal.load(file) reads object by object
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(stored, tuple) or len(stored) != 2 or stored[0] != full_key:
        return None
    return stored[1]


def store(kind: str, key: Any, value: Any) -> None:
    """Keep ``value`` for ``key``; then prune the cache directory."""
    folder = directory()
    if folder is None:
        return
    full_key = _full_key(kind, key)
    path = _path(folder, kind, full_key)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(folder, exist_ok=True)
        with open(temporary, "wb") as file:
            marshal.dump((full_key, value), file)
        os.replace(temporary, path)
    except (OSError, ValueError):
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return
    prune(folder)


def prune(folder: str, kept: int = KEPT) -> None:
    """Keep the ``kept`` most recently written entries in ``folder``; remove
    the others and the files of earlier formats (``*.marshal`` without this
    format's suffix).  Other files are left alone."""
    entries: list[tuple[int, str]] = []
    earlier: list[str] = []
    try:
        with os.scandir(folder) as found:
            for item in found:
                if item.name.endswith(".marshal") and item.is_file(follow_symlinks=False):
                    if item.name.endswith(_SUFFIX):
                        entries.append((item.stat(follow_symlinks=False).st_mtime_ns, item.path))
                    else:
                        earlier.append(item.path)
    except OSError:
        return
    entries.sort(reverse=True)
    for path in earlier + [path for _, path in entries[kept:]]:
        try:
            os.unlink(path)
        except OSError:
            pass
