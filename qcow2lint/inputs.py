"""Command-line inputs to image files: files, directories and glob patterns.

:func:`expand` turns what the user typed into the ordered list of files to
check.  Each argument is, in this order of precedence:

* an existing **directory**: every regular file below it, recursively, whose
  name ends in ``.qcow2`` or whose first bytes are the qcow2 magic
  ``QFI\\xfb``; symbolic links are followed, but a directory already visited
  (a symlink loop) is skipped, and so are ``.git``, ``.hg`` and ``.svn``
  and whatever the ``exclude`` globs match;
* an existing **file** (or anything else that exists), checked as given;
* a **glob pattern** (``*``, ``?``, ``[...]``, and ``**`` for any depth,
  which does not descend through symbolic links), expanded here when the
  shell did not; matched directories are searched as above, matched files
  are checked as given;
* anything else is an input that **matches nothing**.

Files come out sorted within each argument, arguments in the order given, and
a file named twice (also through a symbolic link) is checked once, at its
first place.  A missing path or an argument that
matches nothing is kept as an :class:`Unmatched` entry so the caller can
report it in place (the command line exits 2 with one line for it).

:func:`~qcow2lint.filekind.lfs_pointer_error` recognises a Git LFS pointer
file (a checkout made without ``git lfs``): a small text file standing in for
the real image.  The reader refuses such a file with an
:class:`~qcow2lint.filekind.ImageError` that tells the user to run
``git lfs pull``.
"""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs

from qcow2lint.filekind import has_qcow2_magic
from qcow2lint.recordtype import Record

#: File names that are checked without sniffing their content.
IMAGE_SUFFIXES = (".qcow2",)
#: Directories never searched when walking a directory given on the command line.
SKIPPED_DIRECTORIES = frozenset({".git", ".hg", ".svn"})
#: Why a command-line path names nothing (``check`` and ``dump`` alike).
MISSING = "no such file or directory"
#: Whether a path found by a search is excluded (``Config.excluded``).
Excluded = Callable[[str], bool]


@attrs.frozen(repr=False)
class Unmatched(Record):
    """A command-line argument that names no file to check."""

    argument: str
    reason: str

    def __str__(self) -> str:
        return f"{self.argument}: {self.reason}"


def _is_image_candidate(path: str, name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES) or has_qcow2_magic(path)


def walk_directory(directory: str, excluded: Excluded | None = None) -> Iterator[str]:
    """Image files below ``directory``, sorted by path component, recursively.

    Follows symbolic links but never enters a directory twice, so a symlink
    loop ends the descent instead of recursing forever.  A file or directory
    for which ``excluded(path)`` is true is skipped (a directory with all
    that lies below it).
    """
    seen: set[tuple[int, int]] = set()

    def visit(folder: str) -> Iterator[str]:
        try:
            info = os.stat(folder)
        except OSError:
            return
        key = (info.st_dev, info.st_ino)
        if key in seen:
            return
        seen.add(key)
        try:
            with os.scandir(folder) as entries:
                names = sorted(entry.name for entry in entries)
        except OSError:
            return
        for name in names:
            path = os.path.join(folder, name)
            try:
                mode = os.stat(path).st_mode  # follows symlinks; a broken one is skipped
            except OSError:
                continue
            if excluded is not None and excluded(path):
                continue
            if stat.S_ISDIR(mode):
                if name not in SKIPPED_DIRECTORIES:
                    yield from visit(path)
            elif stat.S_ISREG(mode) and _is_image_candidate(path, name):
                yield path

    yield from visit(directory)


def _glob(pattern: str) -> list[str]:
    """Sorted matches of a glob pattern; ``**`` matches any depth of
    directories but does not descend through symbolic links (no loops)."""
    path = Path(pattern)
    if path.is_absolute():
        root, relative = Path(path.anchor), str(path.relative_to(path.anchor))
    else:
        root, relative = Path(), pattern
    try:
        matches = {str(match) for match in root.glob(relative)}
    except (OSError, ValueError):  # e.g. an unreadable directory, an invalid pattern
        return []
    # Like the shell, wildcards do not match hidden names (".git") unless the
    # pattern spells the leading dot itself.
    named = set(Path(relative).parts)
    if not any(part.startswith(".") and glob.has_magic(part) for part in named):
        matches = {
            match
            for match in matches
            if not any(
                part.startswith(".") and part not in (".", "..") and part not in named for part in Path(match).parts
            )
        }
    return sorted(matches)


def _expand_one(argument: str, excluded: Excluded | None = None) -> list[str] | Unmatched:
    if os.path.isdir(argument):
        found = list(walk_directory(argument, excluded))
        return found or Unmatched(
            argument,
            "directory holds no qcow2 image (no *.qcow2 file, no file with the qcow2 magic"
            + (")" if excluded is None else ", or all are excluded)"),
        )
    if os.path.lexists(argument):
        return [argument]
    if glob.has_magic(argument):
        files: list[str] = []
        for match in _glob(argument):
            if excluded is not None and excluded(match):
                continue
            if os.path.isdir(match):
                files.extend(walk_directory(match, excluded))
            else:
                files.append(match)
        return files or Unmatched(argument, "matches no file")
    return Unmatched(argument, MISSING)


def expand(arguments: Iterable[str | os.PathLike[str]], excluded: Excluded | None = None) -> list[str | Unmatched]:
    """The files named by ``arguments`` (files, directories, glob patterns), in order.

    ``excluded(path)`` (the configuration's ``exclude`` globs) skips files
    and directories found by searching a directory or expanding a glob; a
    file named on the command line is always checked.

    >>> expand(["no/such/*.qcow2"])
    [Unmatched(argument='no/such/*.qcow2', reason='matches no file')]
    """
    result: list[str | Unmatched] = []
    seen: set[str] = set()
    for argument in arguments:
        expanded = _expand_one(os.fspath(argument), excluded)
        if isinstance(expanded, Unmatched):
            result.append(expanded)
            continue
        for path in expanded:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                result.append(path)
    return result
