"""Where an image's bytes come from: a local file, or a remote object.

The reader asks a *byte source* for ranges and never knows which kind it
has.  A source has a printable ``name`` (what reports print), a ``size``,
how many bytes it really holds (``allocated``: a sparse file holds fewer
than its size), ``read`` and ``read_into`` (bounded by the size), and
``prefetch(ranges, level)``: a hint naming every range the reader's next
step will read.  A local file ignores the hint; a remote object
(:mod:`qcow2lint.remote`, imported only for a URL) fetches the missing
ranges in one concurrent round, so that the reads that follow are served
from memory.  ``level`` names the step of the plan (see :data:`LEVELS`):
a remote source releases a streamed level's previous window when the
next one is planned, which keeps its memory bounded like a local check's.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from qcow2lint.filekind import LFS_POINTER_PREFIX, ImageError, lfs_pointer_error

__all__ = ["LEVELS", "LocalSource", "Source", "display_name", "is_url", "open_source"]

#: The steps of the reader's plan, in dependency order: what each needs is
#: known only once the one before it is read.
LEVELS = (
    "head",  # the header cluster
    "area",  # the rest of the extension area and the backing file name
    "tables",  # L1 and refcount tables, bitmap directory, snapshot table, LUKS header
    "second",  # bitmap tables, snapshots' L1 tables
    "tails",  # the data clusters holding each bitmap's last bit
    "clusters",  # L2 tables and refcount blocks, streamed in windows
    "deep",  # --deep: compressed payloads, per L2 batch
)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(text: str | os.PathLike[str]) -> bool:
    """Whether a command-line argument is a URL (``scheme://...``) rather than a path.

    >>> is_url("s3://bucket/a.qcow2"), is_url("disk.qcow2"), is_url("C:/x")
    (True, False, False)
    """
    return isinstance(text, str) and _URL.match(text) is not None


def display_name(url: str) -> str:
    """The printable name of a URL: without user name, password, query
    string or fragment (a signed URL carries its signature in the query).

    >>> display_name("https://user:secret@host:8443/a/b.qcow2?X-Amz-Signature=abc#frag")
    'https://host:8443/a/b.qcow2'
    >>> display_name("s3://MyBucket/Images/a.qcow2")
    's3://MyBucket/Images/a.qcow2'
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:  # a malformed address: keep only what cannot be a secret
        match = _URL.match(url)
        return (match.group(0) if match else "") + "..."
    host = parts.netloc.rpartition("@")[2]  # user name and password dropped
    return f"{parts.scheme}://{host}{parts.path}"


_ANY_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact(text: str) -> str:
    """``text`` with every URL in it replaced by its :func:`display_name`
    (exception texts of HTTP and S3 clients embed the URLs they fetched)."""
    return _ANY_URL.sub(lambda match: display_name(match.group(0)), text)


class Source(Protocol):
    """Bounded random access to an image's bytes."""

    #: What reports print: the path, or the URL without credentials.
    name: str
    size: int
    allocated: int

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer where the image ends."""
        ...

    def read_into(self, buffer: memoryview, offset: int) -> int:
        """Fill ``buffer`` from ``offset``; return the bytes read (short at the end)."""
        ...

    def prefetch(self, ranges: Iterable[tuple[int, int]], level: str) -> None:
        """Hint: the ``(offset, length)`` ranges the reader's step ``level`` reads next."""
        ...

    def close(self) -> None:
        """Release the file or connection (again is a no-op)."""
        ...


class LocalSource:
    """A local file or block device, read with ``pread``."""

    #: A local read is as cheap as a planned one: the reader skips its plans.
    plans = False

    def __init__(self, path: str) -> None:
        self.name = self.path = path
        #: Bytes read so far (what the remote bound is measured against).
        self.bytes_read = 0
        try:
            kind = os.stat(path).st_mode
        except OSError as exc:
            raise ImageError(f"{path}: cannot open: {exc.strerror or exc}") from None
        # Opening a FIFO would wait for a writer; a socket cannot be read.
        if not (stat.S_ISREG(kind) or stat.S_ISBLK(kind) or stat.S_ISDIR(kind)):
            raise ImageError(f"{path}: is not a regular file or block device")
        try:
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise ImageError(f"{path}: cannot open: {exc.strerror or exc}") from None
        try:
            info = os.fstat(self.fd)
            if stat.S_ISDIR(info.st_mode):
                raise ImageError(f"{path}: is a directory, not an image file")
            self.size = info.st_size if stat.S_ISREG(info.st_mode) else self._device_size()
            #: Bytes the file really holds (a sparse file holds fewer than its
            #: size): bounds the work that a count field alone would set.
            self.allocated = min(self.size, info.st_blocks * 512) if stat.S_ISREG(info.st_mode) else self.size
            if self.size > 0:
                head = self.read(0, len(LFS_POINTER_PREFIX))  # surfaces EACCES/EIO now, as one clear error
                self.bytes_read = 0
                lfs = lfs_pointer_error(path, head, self.size)
                if lfs is not None:
                    raise ImageError(lfs)
        except BaseException:
            os.close(self.fd)
            raise

    def _device_size(self) -> int:
        try:
            return os.lseek(self.fd, 0, os.SEEK_END)
        except OSError as exc:
            raise ImageError(f"{self.path}: cannot determine the size: {exc.strerror}") from None

    def close(self) -> None:
        """Close the file (again is a no-op)."""
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def prefetch(self, ranges: Iterable[tuple[int, int]], level: str) -> None:
        """Nothing to do: a local read is as cheap as a planned one."""

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer where the file ends."""
        if offset >= self.size or length <= 0:
            return b""
        length = min(length, self.size - offset)
        chunks = []
        while length > 0:
            try:
                chunk = os.pread(self.fd, min(length, 1 << 30), offset)
            except OSError as exc:
                raise ImageError(f"{self.path}: read error at {offset:#x}: {exc.strerror}") from None
            if not chunk:
                break
            chunks.append(chunk)
            self.bytes_read += len(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def read_into(self, buffer: memoryview, offset: int) -> int:
        """Fill ``buffer`` from ``offset``; return the bytes read (short at EOF)."""
        done = 0
        while done < len(buffer) and offset + done < self.size:
            try:
                got = os.preadv(self.fd, [buffer[done:]], offset + done)
            except OSError as exc:
                raise ImageError(f"{self.path}: read error at {offset:#x}: {exc.strerror}") from None
            if got <= 0:
                break
            done += got
        self.bytes_read += done
        return done


#: What ``read_image`` and ``build_dump`` pass on for a URL: fsspec storage
#: options and the per-request timeout in seconds.
RemoteOptions = Mapping[str, Any]


def storage_options(items: Iterable[str] | None) -> dict[str, Any]:
    """``--storage-option KEY=VALUE`` items as fsspec storage options:
    VALUE as JSON when it parses (``true``, ``3``), else the text.

    >>> storage_options(["anon=true", "endpoint_url=http://127.0.0.1:9000"])
    {'anon': True, 'endpoint_url': 'http://127.0.0.1:9000'}
    """
    import json

    options: dict[str, Any] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def open_source(path: str | os.PathLike[str], remote: RemoteOptions | None = None) -> Source:
    """The source of ``path``: a :class:`LocalSource`, or for a URL a remote
    source (``remote`` holds ``storage_options`` and ``timeout``).  Raises
    ImageError when it cannot be opened at all."""
    if is_url(path):
        from qcow2lint.remote import open_remote

        return open_remote(str(path), **dict(remote or {}))
    return LocalSource(os.fspath(path))
