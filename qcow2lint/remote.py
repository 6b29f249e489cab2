"""Images in object storage and behind HTTP: read only their metadata.

Imported only when an input is a URL (``https://``, ``http://``, ``s3://``,
or any other fsspec protocol whose package is installed); it needs the
``remote`` extra (fsspec, aiohttp, s3fs).

A :class:`RemoteSource` keeps a sparse store of the ranges fetched so far.
The reader plans each step (:data:`qcow2lint.source.LEVELS`): the source
fetches the ranges it does not hold yet, merged where adjacent
(``fsspec.utils.merge_offset_ranges``), concurrently, in one round, and
serves the reads that follow from memory.  A read that misses fetches what
it needs (counted as an unplanned round).  Streamed levels (L2 tables,
refcount blocks, compressed payloads) keep one window at a time.

Every response is checked: a ranged GET must come back as such (an HTTP
server that answers 200 with the whole body is refused on its status line,
the body unread), with exactly the bytes asked for, from the same object
as the first response (its ETag, else its size and Last-Modified).
Transient failures (HTTP 5xx, dropped connections, timeouts) are retried
with backoff, :data:`TRIES` times in all; every failure is one line that
names the URL without credentials (:func:`qcow2lint.source.display_name`).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from qcow2lint.filekind import LFS_POINTER_PREFIX, ImageError, lfs_pointer_error
from qcow2lint.source import display_name, redact

__all__ = [
    "DEFAULT_TIMEOUT",
    "FetchStatistics",
    "RemoteError",
    "RemoteSource",
    "history",
    "list_images",
    "open_remote",
]

#: Seconds one request may take (``--timeout``).
DEFAULT_TIMEOUT = 30.0
#: Tries per request (the first and three retries) for transient failures.
TRIES = 4
#: Seconds before the first retry; doubled for each one after it.
BACKOFF = 0.05
#: The first request: the header cluster of the usual 64 KiB clusters (the
#: header and its extensions), which also tells the size and identity.
HEAD_BYTES = 64 << 10
#: The most bytes one ranged request asks for.
MAX_REQUEST = 8 << 20
#: Requests in flight at once.
CONCURRENCY = 16
#: Each level's dependency depth: the windows of one level count as one round.
DEPTH = {"head": 1, "area": 2, "tables": 3, "second": 4, "tails": 5, "l2": 6, "refblocks": 6, "stored": 6, "deep": 7}
#: Levels fetched in windows: planning the next window releases the last one.
STREAMED = frozenset({"l2", "refblocks", "stored", "deep", "miss"})
NEEDS_EXTRA = "reading URLs needs the remote extra: pip install 'qcow2lint[remote]'"


class RemoteError(ImageError):
    """A remote image cannot be read: the message is one line naming its URL."""


@attrs.define
class FetchStatistics:
    """What reading one remote image cost."""

    name: str
    size: int = 0
    #: Body bytes received.
    bytes_fetched: int = 0
    #: Requests sent (retries included).
    requests: int = 0
    #: Dependency rounds: levels that fetched anything, plus unplanned reads.
    rounds: int = 0
    #: Planned fetches (a streamed level fetches one per window).
    windows: int = 0
    #: Reads that missed the plan and fetched on their own.
    unplanned: int = 0
    depths: set[int] = attrs.field(factory=set)


#: The statistics of the remote images read in this process, latest last
#: (for the benchmark and the tests).
history: collections.deque[FetchStatistics] = collections.deque(maxlen=256)


def open_remote(
    url: str, storage_options: Mapping[str, Any] | None = None, timeout: float | None = None
) -> RemoteSource:
    """The source of the object at ``url``: its first bytes fetched, its size
    and identity pinned.  Raises RemoteError (one line) when it cannot be read."""
    name = display_name(url)
    try:
        import fsspec  # noqa: F401
    except ImportError:
        raise RemoteError(f"{name}: {NEEDS_EXTRA}") from None
    backend = _backend(url, name, dict(storage_options or {}), DEFAULT_TIMEOUT if timeout is None else timeout)
    return RemoteSource(name, backend)


def _filesystem(url: str, name: str, options: dict[str, Any], timeout: float) -> tuple[Any, str]:
    """fsspec's filesystem for ``url`` with the storage options, and the path in it."""
    from fsspec.core import url_to_fs

    protocol = url.split("://", 1)[0].lower()
    if protocol in ("http", "https"):
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            raise RemoteError(f"{name}: {NEEDS_EXTRA}") from None
    if protocol in ("s3", "s3a"):
        options.setdefault("config_kwargs", {})
        options["config_kwargs"] = {
            "retries": {"max_attempts": 1},  # qcow2lint retries itself, and counts the tries
            "connect_timeout": timeout,
            "read_timeout": timeout,
            **options["config_kwargs"],
        }
    try:
        fs, path = url_to_fs(url, **options)
    except ImportError as exc:
        raise RemoteError(f"{name}: the {protocol}:// protocol needs a package: {redact(str(exc))}") from None
    except (ValueError, TypeError) as exc:
        if "Protocol not known" in str(exc):
            raise RemoteError(f"{name}: unknown protocol {protocol}:// (no fsspec filesystem for it)") from None
        raise RemoteError(f"{name}: cannot use {protocol}:// with these storage options: {redact(str(exc))}") from None
    return fs, path


def _backend(url: str, name: str, options: dict[str, Any], timeout: float) -> _Backend:
    fs, path = _filesystem(url, name, options, timeout)
    kind = type(fs).__name__
    if kind == "HTTPFileSystem":
        return _Http(fs, url, name, timeout)
    if kind == "S3FileSystem":
        return _S3(fs, path, name, timeout)
    return _Generic(fs, path, name, timeout)


def list_images(
    url: str,
    excluded: Callable[[str], bool] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> list[str | tuple[str, str]]:
    """The images below a listable URL, sorted, as a directory search finds
    them: ``*.qcow2`` names, and other objects whose first 4 bytes (fetched
    concurrently, never more) are the qcow2 magic; ``excluded(name)`` skips
    a name.  What cannot be listed or sniffed comes out as (name, reason)."""
    from qcow2lint.filekind import QCOW2_MAGIC
    from qcow2lint.inputs import IMAGE_SUFFIXES

    name = display_name(url)
    try:
        import fsspec  # noqa: F401
    except ImportError:
        return [(name, NEEDS_EXTRA)]
    wait = DEFAULT_TIMEOUT if timeout is None else timeout
    try:
        fs, path = _filesystem(url, name, dict(storage_options or {}), wait)
        keys = sorted(fs.find(path.rstrip("/") if path.strip("/") else path, withdirs=False))
    except RemoteError as exc:
        return [(name, str(exc).removeprefix(f"{name}: "))]
    except FileNotFoundError:
        return [(name, "no such bucket, host or prefix")]
    except PermissionError:
        return [(name, "cannot list it: access denied")]
    except Exception as exc:  # noqa: BLE001 -- one line for every client failure
        return [(name, redact(f"cannot list it: {type(exc).__name__}: {exc}"))]
    # Each found object named as the argument names the prefix (fsspec's own
    # spelling may differ: memory:///a for memory://a).
    base, prefix = path.rstrip("/"), url.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    urls = [
        f"{prefix}/{key[len(base) :].lstrip('/')}"
        if key.startswith(base + "/")
        else (key if "://" in key else fs.unstrip_protocol(key))
        for key in keys
    ]
    urls = [found for found in urls if excluded is None or not excluded(display_name(found))]
    named = [found for found in urls if found.lower().endswith(IMAGE_SUFFIXES)]
    others = [found for found in urls if not found.lower().endswith(IMAGE_SUFFIXES)]
    result: list[str | tuple[str, str]] = list(named)
    if others:
        try:
            heads = fs.cat_ranges(others, [0] * len(others), [len(QCOW2_MAGIC)] * len(others), on_error="return")
        except Exception as exc:  # noqa: BLE001
            heads = [exc] * len(others)
        for found, head in zip(others, heads):
            if isinstance(head, BaseException):
                reason = redact(f"cannot read it to look for the qcow2 magic: {type(head).__name__}: {head}")
                result.append((display_name(found), reason))
            elif bytes(head) == QCOW2_MAGIC:
                result.append(found)
    result.sort(key=lambda item: item if isinstance(item, str) else item[0])
    if not result:
        return [(name, "holds no qcow2 image (no *.qcow2 object, no object with the qcow2 magic)")]
    return result


class RemoteSource:
    """An object read in planned rounds of ranged requests (see the module)."""

    plans = True

    def __init__(self, name: str, backend: _Backend) -> None:
        self.name = name
        self._backend = backend
        self.statistics = FetchStatistics(name)
        backend.statistics = self.statistics
        #: Fetched ranges, sorted by start, never overlapping: (start, data, level).
        self._chunks: list[tuple[int, bytes, str]] = []
        self._starts: list[int] = []
        self._pinned_released = False
        try:
            first = backend.open(HEAD_BYTES)
        except BaseException:
            backend.close()
            raise
        self.size = self.allocated = backend.size
        self.statistics.size = self.size
        self.statistics.depths.add(DEPTH["head"])
        self._store(0, first, "head")
        if self.size > 0:
            lfs = lfs_pointer_error(name, first[: len(LFS_POINTER_PREFIX)], self.size)
            if lfs is not None:
                backend.close()
                raise RemoteError(lfs)
        history.append(self.statistics)

    # --- the store ---------------------------------------------------------------

    def _store(self, start: int, data: bytes, level: str) -> None:
        if not data:
            return
        index = bisect.bisect_left(self._starts, start)
        self._starts.insert(index, start)
        self._chunks.insert(index, (start, data, level))

    def _release(self, levels: Iterable[str]) -> None:
        dropped = set(levels)
        kept = [chunk for chunk in self._chunks if chunk[2] not in dropped]
        self._chunks, self._starts = kept, [chunk[0] for chunk in kept]

    def _missing(self, ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """The parts of ``(offset, length)`` ranges, within the object, not held yet: (start, end)."""
        missing = []
        for offset, length in sorted(ranges):
            start, end = max(offset, 0), min(offset + length, self.size)
            if start >= end:
                continue
            index = max(bisect.bisect_right(self._starts, start) - 1, 0)
            while start < end and index < len(self._chunks):
                chunk_start, data, _ = self._chunks[index]
                if chunk_start > start:
                    missing.append((start, min(chunk_start, end)))
                start = max(start, chunk_start + len(data))
                index += 1
                if chunk_start >= end:
                    break
            if start < end:
                missing.append((start, end))
        return missing

    def _fetch(self, missing: list[tuple[int, int]], level: str) -> None:
        from fsspec.utils import merge_offset_ranges

        pieces = [
            (start, min(start + MAX_REQUEST, end)) for first, end in missing for start in range(first, end, MAX_REQUEST)
        ]
        _, starts, ends = merge_offset_ranges(
            [""] * len(pieces), [p[0] for p in pieces], [p[1] for p in pieces], max_gap=0, max_block=MAX_REQUEST
        )
        ranges = [(int(start), int(end or start)) for start, end in zip(starts, ends)]
        # merge_offset_ranges may merge overlapping ranges: store each byte once.
        for (start, end), data in zip(ranges, self._backend.fetch(ranges)):
            for gap_start, gap_end in self._missing([(start, end - start)]):
                self._store(gap_start, data[gap_start - start : gap_end - start], level)

    # --- the Source interface -------------------------------------------------------

    def prefetch(self, ranges: Iterable[tuple[int, int]], level: str) -> None:
        """Fetch, in one concurrent round, what the ranges hold and the store does not."""
        if level in STREAMED:
            released = [level]
            if not self._pinned_released:  # the image's record is built: its tables' bytes are not needed
                released += ["area", "tables", "second", "tails"]
                self._pinned_released = True
            self._release(released)
        missing = self._missing(ranges)
        if not missing:
            return
        self.statistics.windows += 1
        self.statistics.depths.add(DEPTH.get(level, 0))
        self._fetch(missing, level)
        self.statistics.rounds = len(self.statistics.depths) + self.statistics.unplanned

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes at ``offset``; fewer where the object ends."""
        if offset >= self.size or length <= 0 or offset < 0:
            return b""
        end = min(offset + length, self.size)
        index = bisect.bisect_right(self._starts, offset) - 1
        if index >= 0:
            start, data, _ = self._chunks[index]
            if start + len(data) >= end:
                return data[offset - start : end - start]
        missing = self._missing([(offset, end - offset)])
        if missing:
            self.statistics.unplanned += 1
            self._release(["miss"])
            self._fetch(missing, "miss")
            self.statistics.rounds = len(self.statistics.depths) + self.statistics.unplanned
        parts, position = [], offset
        index = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        while position < end and index < len(self._chunks):
            start, data, _ = self._chunks[index]
            if start <= position < start + len(data):
                taken = data[position - start : min(end, start + len(data)) - start]
                parts.append(taken)
                position += len(taken)
            index += 1
        return b"".join(parts)

    def read_into(self, buffer: memoryview, offset: int) -> int:
        """Fill ``buffer`` from ``offset``; return the bytes read (short at the end)."""
        data = self.read(offset, len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        """Release the store and the connections (again is a no-op)."""
        self._chunks, self._starts = [], []
        self._backend.close()


# --- protocols ----------------------------------------------------------------------


class _Backend:
    """Ranged reads of one object over one protocol, each response checked."""

    statistics: FetchStatistics
    size: int = 0

    def __init__(self, fs: Any, target: str, name: str, timeout: float) -> None:
        self.fs, self.target, self.name, self.timeout = fs, target, name, timeout
        self.identity: str | None = None

    def open(self, length: int) -> bytes:
        """Fetch the first ``length`` bytes; pin the size and identity."""
        raise NotImplementedError

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of each (start, end) range, fetched concurrently."""
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to release by default."""

    def fail(self, text: str) -> RemoteError:
        """The one-line error for this object."""
        return RemoteError(f"{self.name}: {redact(text)}")

    def changed(self, seen: str | None) -> RemoteError:
        """The error for a response from another version of the object."""
        return self.fail(f"the image changed while being read ({self.identity} then {seen})")

    def check_length(self, data: bytes, start: int, end: int) -> bytes:
        """Exactly the bytes asked for, or an error (never zero padding)."""
        if len(data) != end - start:
            kind = "short" if len(data) < end - start else "long"
            raise self.fail(
                f"the server sent {len(data)} bytes for the {end - start}-byte range at {start:#x} (a {kind} body)"
            )
        return data

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on fsspec's I/O loop and wait for it."""
        from fsspec.asyn import get_loop, sync

        return sync(getattr(self.fs, "loop", None) or get_loop(), lambda: coroutine)

    async def retried(self, attempt: Any, start: int, end: int) -> bytes:
        """``attempt(start, end)`` up to TRIES times while it fails transiently."""
        last: BaseException | None = None
        for tries in range(TRIES):
            if tries:
                await asyncio.sleep(BACKOFF * 2 ** (tries - 1))
            self.statistics.requests += 1
            try:
                data: bytes = await asyncio.wait_for(attempt(start, end), self.timeout)
            except _Transient as exc:
                last = exc
                continue
            except TimeoutError as exc:
                last = exc
                continue
            self.statistics.bytes_fetched += len(data)
            return data
        if isinstance(last, _Transient):
            raise self.fail(f"{last} ({TRIES} tries)")
        raise self.fail(f"no response within {self.timeout:g} s ({TRIES} tries)")

    async def gather(self, attempt: Any, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Every range through :meth:`retried`, at most CONCURRENCY at once."""
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one(start: int, end: int) -> bytes:
            async with limit:
                return await self.retried(attempt, start, end)

        return list(await asyncio.gather(*(one(start, end) for start, end in ranges)))


class _Transient(Exception):
    """A failure worth another try (its text is the error line's)."""


def _content_range(value: str | None) -> tuple[int, int, int] | None:
    """``bytes 0-99/1000`` as (0, 100, 1000); ``bytes */1000`` as (0, 0, 1000)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    try:
        size = int(total)
        if span.strip() == "*":
            return 0, 0, size
        first, _, last = span.partition("-")
        return int(first), int(last) + 1, size
    except ValueError:
        return None


class _Http(_Backend):
    """HTTP(S): range GETs issued on fsspec's aiohttp session, so that the
    status is looked at before any of the body is read."""

    async def _get(self, start: int, end: int) -> bytes:
        import aiohttp

        session = await self.fs.set_session()
        headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "identity"}
        try:
            async with session.get(self.target, headers=headers, allow_redirects=True) as response:
                status = response.status
                if status == 200:
                    response.close()  # the whole object is on its way: not one byte of it is read
                    raise self.fail(
                        "the server ignored the Range request (HTTP 200): qcow2lint reads only an image's "
                        "metadata and will not download it"
                    )
                if status >= 500:
                    response.close()
                    raise _Transient(f"HTTP {status} {response.reason or ''}".rstrip())
                if status in (404, 410):
                    raise self.fail("no such object" + f" (HTTP {status})")
                if status in (401, 403):
                    raise self.fail(f"access denied (HTTP {status})")
                if status == 416 and self.identity is None and start == 0:
                    found = _content_range(response.headers.get("Content-Range"))
                    if found is not None and found[2] == 0:  # an empty object
                        self._pin(response.headers, 0)
                        return b""
                if status != 206:
                    response.close()
                    raise self.fail(f"HTTP {status} {response.reason or ''}".rstrip())
                found = _content_range(response.headers.get("Content-Range"))
                if found is None:
                    response.close()
                    raise self.fail("the server answered the Range request without a valid Content-Range")
                first, last, total = found
                wanted_end = min(end, total) if self.identity is None else end
                if first != start or last != wanted_end:
                    response.close()
                    raise self.fail(
                        f"the server sent the range {first}-{last - 1} for the request {start}-{wanted_end - 1}"
                    )
                self._pin(response.headers, total)
                declared = response.headers.get("Content-Length")
                if declared is not None and declared.isdigit() and int(declared) != last - first:
                    response.close()
                    self._length_error(int(declared), first, last)
                data = await response.content.read(last - first + 1)
                while len(data) <= last - first:
                    more = await response.content.read(last - first + 1 - len(data))
                    if not more:
                        break
                    data += more
                return self.check_length(data, first, last)
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise _Transient(f"connection failed: {exc}") from None

    def _length_error(self, declared: int, first: int, last: int) -> None:
        kind = "short" if declared < last - first else "long"
        raise self.fail(
            f"the server sent {declared} bytes for the {last - first}-byte range at {first:#x} (a {kind} body)"
        )

    def _pin(self, headers: Any, total: int) -> None:
        """Pin the object's identity at the first response; compare every later one."""
        etag = headers.get("ETag")
        seen = f"ETag {etag}" if etag else f"size {total}, Last-Modified {headers.get('Last-Modified')}"
        if self.identity is None:
            self.identity, self.size = seen, total
        elif seen != self.identity or total != self.size:
            raise self.changed(seen)

    def open(self, length: int) -> bytes:
        data: bytes = self.run(self.retried(self._get, 0, length))
        return data

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        result: list[bytes] = self.run(self.gather(self._get, ranges))
        return result


class _S3(_Backend):
    """S3 through s3fs: ranged GetObject with IfMatch the pinned ETag."""

    def __init__(self, fs: Any, target: str, name: str, timeout: float) -> None:
        super().__init__(fs, target, name, timeout)
        self.fs.retries = 1  # qcow2lint retries itself
        self.bucket, self.key, self.version = fs.split_path(target)

    async def _get(self, start: int, end: int) -> bytes:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key, "Range": f"bytes={start}-{end - 1}"}
        if self.version:
            kwargs["VersionId"] = self.version
        if self.identity is not None:
            kwargs["IfMatch"] = self.identity
        try:
            response = await self.fs._call_s3("get_object", **kwargs)
            data: bytes = await response["Body"].read()
        except Exception as exc:  # noqa: BLE001 -- every botocore/aiohttp failure becomes one line
            raise self._translate(exc, start) from None
        found = _content_range(response.get("ContentRange"))
        etag = response.get("ETag")
        if self.identity is None:
            if found is None:
                raise self.fail("the server answered the ranged GetObject without a Content-Range")
            self.identity, self.size = etag, found[2]
        elif etag != self.identity or (found is not None and found[2] != self.size):
            raise self.changed(etag)
        return self.check_length(data, start, min(end, self.size))

    def _translate(self, exc: BaseException, start: int) -> BaseException:
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
            return exc
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        response = getattr(cause, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "InvalidRange" and self.identity is None and start == 0:
            return _Empty()
        if code in ("NoSuchKey", "404", "NotFound", "NoSuchBucket") or isinstance(exc, FileNotFoundError):
            return self.fail("no such object" + (" (no such bucket)" if code == "NoSuchBucket" else ""))
        if code in ("PreconditionFailed", "412"):
            return self.fail(f"the image changed while being read ({self.identity} is no longer its ETag)")
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403") or isinstance(
            exc, PermissionError
        ):
            return self.fail(f"access denied ({code or 'HTTP 403'})")
        if (isinstance(status, int) and status >= 500) or code in ("SlowDown", "InternalError", "ServiceUnavailable"):
            return _Transient(f"S3 {code or status}")
        name = type(cause).__name__
        if "Connect" in name or "Connection" in name or "Endpoint" in name or isinstance(cause, ConnectionError):
            return _Transient(f"connection failed: {cause}")
        return self.fail(f"S3 error: {code or name}: {cause}")

    def open(self, length: int) -> bytes:
        try:
            data: bytes = self.run(self.retried(self._get, 0, length))
        except _Empty:
            info = self.run(self.fs._info(self.target))
            self.identity, self.size = info.get("ETag"), int(info.get("size") or 0)
            return b""
        return data

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        result: list[bytes] = self.run(self.gather(self._get, ranges))
        return result


class _Empty(Exception):
    """A range request on an empty object."""


class _Generic(_Backend):
    """Any other fsspec filesystem: ``cat_ranges``, lengths checked, the
    identity (``info()``) compared after each round."""

    @contextlib.contextmanager
    def client_errors(self) -> Iterator[None]:
        """Whatever the protocol's client raises, as this object's one line."""
        try:
            yield
        except FileNotFoundError:
            raise self.fail("no such object") from None
        except PermissionError:
            raise self.fail("access denied") from None
        except Exception as exc:  # noqa: BLE001 -- one line for every client failure
            raise self.fail(f"{type(exc).__name__}: {exc}") from None

    def _identity(self) -> tuple[str, int]:
        with self.client_errors():
            info = self.fs.info(self.target)
        if info.get("type") == "directory":
            raise self.fail("is a directory, not an image file")
        size = int(info.get("size") or 0)
        for key in ("ETag", "etag", "md5Hash", "generation", "mtime", "LastModified", "last_modified", "modified"):
            if info.get(key) is not None:
                return f"{key} {info[key]}", size
        return f"size {size}", size

    def open(self, length: int) -> bytes:
        self.identity, self.size = self._identity()
        return self.fetch([(0, min(length, self.size))])[0] if self.size else b""

    def fetch(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        ranges = [(start, end) for start, end in ranges]
        self.statistics.requests += len(ranges)
        with self.client_errors():
            found = self.fs.cat_ranges(
                [self.target] * len(ranges), [r[0] for r in ranges], [r[1] for r in ranges], on_error="raise"
            )
        data = [self.check_length(bytes(part), start, end) for part, (start, end) in zip(found, ranges)]
        self.statistics.bytes_fetched += sum(map(len, data))
        identity, size = self._identity()
        if identity != self.identity or size != self.size:
            raise self.changed(identity)
        return data
