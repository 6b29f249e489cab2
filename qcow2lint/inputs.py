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
report it in place (the command line exits 2 with one line for it), and so
is everything a search cannot look at: a directory that cannot be listed or
entered, a file that cannot be read to look for the magic.  A linter in CI
must not pass because it could not see an image.  A directory search and a
glob follow one rule for an entry named ``*.qcow2``: it is checked whatever
it is, so a dangling symbolic link or a FIFO gets its error line either way
(a FIFO is never opened: that would wait for a writer).

:func:`~qcow2lint.filekind.lfs_pointer_error` recognises a Git LFS pointer
file (a checkout made without ``git lfs``): a small text file standing in for
the real image.  The reader refuses such a file with an
:class:`~qcow2lint.filekind.ImageError` that tells the user to run
``git lfs pull``.
"""

from __future__ import annotations

import errno
import fnmatch
import glob
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from qcow2lint.filekind import QCOW2_MAGIC
from qcow2lint.recordtype import Record
from qcow2lint.source import is_url

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
    """A command-line argument that names no file to check, or a path that
    a search could not look at (``reason`` says why)."""

    argument: str
    reason: str

    def __str__(self) -> str:
        return f"{self.argument}: {self.reason}"


def reason(exc: OSError) -> str:
    """Why a path cannot be used, in the words ``ls`` uses: ``permission denied``."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def _sniff(path: str) -> bool | Unmatched:
    """Whether the regular file at ``path`` starts with the qcow2 magic, or
    why it cannot be read (a file that might be an image is never passed over
    silently)."""
    try:
        # O_NONBLOCK: should the file have become a FIFO since it was
        # classified, the open returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        try:
            return os.read(fd, len(QCOW2_MAGIC)) == QCOW2_MAGIC
        finally:
            os.close(fd)
    except OSError as exc:
        return Unmatched(path, f"cannot read it to look for the qcow2 magic: {reason(exc)}")


def _unsearchable(folder: str, exc: OSError) -> Unmatched:
    return Unmatched(folder, f"cannot search directory: {reason(exc)}")


def walk_directory(directory: str, excluded: Excluded | None = None) -> Iterator[str | Unmatched]:
    """Image files below ``directory``, sorted by path component, recursively.

    Follows symbolic links but never enters a directory twice, so a symlink
    loop ends the descent instead of recursing forever.  A file or directory
    for which ``excluded(path)`` is true is skipped (a directory with all
    that lies below it).  What cannot be searched or read comes out as an
    :class:`Unmatched` entry in its place: a directory that cannot be listed
    or entered, a file that cannot be read to look for the magic.  An entry
    named ``*.qcow2`` that is no regular file (a dangling symbolic link, a
    FIFO, a device) comes out as a path, as a glob would match it: checking
    it says what it is.
    """
    seen: set[tuple[int, int]] = set()

    def visit(folder: str) -> Iterator[str | Unmatched]:
        try:
            info = os.stat(folder)
        except OSError as exc:
            yield _unsearchable(folder, exc)
            return
        key = (info.st_dev, info.st_ino)
        if key in seen:
            return
        seen.add(key)
        try:
            with os.scandir(folder) as entries:
                names = sorted(entry.name for entry in entries)
        except OSError as exc:
            yield _unsearchable(folder, exc)
            return
        for name in names:
            path = os.path.join(folder, name)
            if excluded is not None and excluded(path):
                continue
            named = name.lower().endswith(IMAGE_SUFFIXES)
            try:
                mode = os.stat(path).st_mode  # follows symlinks
            except OSError as exc:
                if exc.errno == errno.EACCES and not os.path.islink(path):
                    # Listed but not entered (a directory without search
                    # permission): none of its entries can be looked at.
                    yield _unsearchable(folder, exc)
                    return
                if named or exc.errno == errno.EACCES:
                    yield path  # the check says why it cannot be read
                continue
            if stat.S_ISDIR(mode):
                if name not in SKIPPED_DIRECTORIES:
                    yield from visit(path)
            elif named:
                yield path
            elif stat.S_ISREG(mode):  # never opened unless regular: a FIFO would block
                magic = _sniff(path)
                if magic is True:
                    yield path
                elif isinstance(magic, Unmatched):
                    yield magic

    yield from visit(directory)


def _glob(pattern: str, excluded: Excluded | None = None) -> list[str | Unmatched]:
    """Sorted matches of a glob pattern, then the directories it had to search
    but could not; ``**`` matches any depth of directories but does not
    descend through symbolic links (no loops).

    Like the shell, wildcards do not match hidden names (``.git``) unless
    the pattern spells the leading dot itself.
    """
    path = Path(pattern)
    parts = list(path.parts[1:] if path.anchor else path.parts)
    if not parts:
        return []
    dirs_only = pattern.endswith(("/", os.sep)) or parts[-1] == "**"
    hidden_ok = any(part.startswith(".") and glob.has_magic(part) for part in parts)
    errors: dict[str, Unmatched] = {}

    def names(folder: str) -> list[str]:
        try:
            with os.scandir(folder or os.curdir) as entries:
                return [entry.name for entry in entries]
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            errors.setdefault(folder, _unsearchable(folder or os.curdir, exc))
            return []

    def below(folder: str) -> Iterator[str]:  # ``**``: the folder and every directory under it
        yield folder
        for name in sorted(names(folder)):
            child = os.path.join(folder, name)
            if (hidden_ok or not name.startswith(".")) and not os.path.islink(child) and os.path.isdir(child):
                if excluded is None or not excluded(child):
                    yield from below(child)

    current = [path.anchor]
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            current = [found for folder in current for found in below(folder)]
            continue
        if glob.has_magic(part):
            candidates = [
                os.path.join(folder, name)
                for folder in current
                for name in names(folder)
                if fnmatch.fnmatchcase(name, part) and (hidden_ok or not name.startswith("."))
            ]
        else:
            candidates = [os.path.join(folder, part) for folder in current]
        if last and not dirs_only:
            current = [candidate for candidate in candidates if os.path.lexists(candidate)]
        else:
            current = [candidate for candidate in candidates if os.path.isdir(candidate or os.curdir)]
    found: list[str | Unmatched] = sorted({match or os.curdir for match in current})
    return [*found, *errors.values()]


def _expand_one(argument: str, excluded: Excluded | None = None) -> list[str | Unmatched] | Unmatched:
    if os.path.isdir(argument):
        found = list(walk_directory(argument, excluded))
        return found or Unmatched(
            argument,
            "directory holds no qcow2 image (no *.qcow2 file, no file with the qcow2 magic"
            + (")" if excluded is None else ", or all are excluded)"),
        )
    try:
        os.lstat(argument)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR) and not glob.has_magic(argument):
            return Unmatched(argument, f"cannot access: {reason(exc)}")
    else:
        return [argument]
    if glob.has_magic(argument):
        files: list[str | Unmatched] = []
        for match in _glob(argument, excluded):
            if isinstance(match, Unmatched):
                files.append(match)
            elif excluded is not None and excluded(match):
                continue
            elif os.path.isdir(match):
                files.extend(walk_directory(match, excluded))
            else:
                files.append(match)
        return files or Unmatched(argument, "matches no file")
    return Unmatched(argument, MISSING)


def _expand_url(argument: str, excluded: Excluded | None, remote: Mapping[str, Any] | None) -> list[str | Unmatched]:
    """A URL: checked as given, or when it ends in ``/`` (or names only a
    bucket or host), listed like a directory (see docs/remote.md)."""
    from urllib.parse import urlsplit

    path = urlsplit(argument).path
    if not argument.endswith("/") and path.strip("/"):
        return [argument]
    from qcow2lint.remote import list_images

    found: list[str | Unmatched] = []
    for item in list_images(argument, excluded, **dict(remote or {})):
        found.append(item if isinstance(item, str) else Unmatched(*item))
    return found


def expand(
    arguments: Iterable[str | os.PathLike[str]],
    excluded: Excluded | None = None,
    remote: Mapping[str, Any] | None = None,
) -> list[str | Unmatched]:
    """The files named by ``arguments`` (files, directories, glob patterns,
    URLs), in order.

    ``excluded(path)`` (the configuration's ``exclude`` globs) skips files
    and directories found by searching a directory or expanding a glob; a
    file named on the command line is always checked.  A URL ending in
    ``/`` is listed like a directory (``remote``: the storage options and
    timeout, see docs/remote.md).

    >>> expand(["no/such/*.qcow2"])
    [Unmatched(argument='no/such/*.qcow2', reason='matches no file')]
    """
    result: list[str | Unmatched] = []
    seen: set[str] = set()
    for argument in arguments:
        text = os.fspath(argument)
        if is_url(text):
            for url in _expand_url(text, excluded, remote):
                if isinstance(url, Unmatched):
                    if url not in result:
                        result.append(url)
                elif url not in seen:
                    seen.add(url)
                    result.append(url)
            continue
        expanded = _expand_one(text, excluded)
        if isinstance(expanded, Unmatched):
            result.append(expanded)
            continue
        for path in expanded:
            if isinstance(path, Unmatched):
                if path not in result:
                    result.append(path)
                continue
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                result.append(path)
    return result
