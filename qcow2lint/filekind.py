"""What kind of file an input is, from its first bytes: cheap, no numpy.

Both the command line's input expansion (:mod:`qcow2lint.inputs`) and the
reader (:mod:`qcow2lint.reader`) classify files with these; the command
line imports :class:`ImageError` from here so that ``--help`` does not load
the reader.
"""

from __future__ import annotations

import os

#: The qcow2 magic, the first four bytes of every qcow2 image.
QCOW2_MAGIC = b"QFI\xfb"
#: The first line of every Git LFS pointer file.
LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/v1"
#: Git LFS pointer files are small; anything larger is not one.
LFS_POINTER_MAX_SIZE = 1024


class ImageError(Exception):
    """The file cannot be read at all (missing, a directory, no permission)."""


def is_lfs_pointer(head: bytes, size: int) -> bool:
    """True when a file of ``size`` bytes starting with ``head`` is a Git LFS pointer."""
    return size <= LFS_POINTER_MAX_SIZE and head.startswith(LFS_POINTER_PREFIX)


def lfs_pointer_error(path: str, head: bytes, size: int) -> str | None:
    """The one-line message for a Git LFS pointer file, or None for any other file.

    >>> lfs_pointer_error("a.qcow2", b"version https://git-lfs.github.com/spec/v1\\noid sha256:ab\\n", 60)
    'a.qcow2: is a Git LFS pointer file, not the image: fetch the LFS object first (run `git lfs pull`)'
    """
    if not is_lfs_pointer(head, size):
        return None
    return f"{path}: is a Git LFS pointer file, not the image: fetch the LFS object first (run `git lfs pull`)"


def has_qcow2_magic(path: str | os.PathLike[str]) -> bool:
    """True when the file at ``path`` starts with the qcow2 magic (False if unreadable)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(QCOW2_MAGIC)) == QCOW2_MAGIC
    except OSError:
        return False
