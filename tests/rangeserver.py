"""An HTTP server over the standard library for the remote tests: serves a
directory with Range and ETag support, counts what it sends, and misbehaves
on demand.

Faults (set the attributes of :class:`RangeServer` between requests):

* ``ignore_range``: answer every GET with 200 and the whole file;
* ``drop``: close the next N connections without an answer;
* ``unavailable``: answer the next N requests with 503;
* ``change_etag_after``: from the Nth request on, a different ETag;
* ``short_body`` / ``long_body``: send fewer / more bytes than asked (with
  a Content-Length that says so);
* ``stall``: hold the next N requests until the server stops (past any
  short client timeout);
* ``no_etag``: no ETag header (Last-Modified identifies the file).
"""

from __future__ import annotations

import http.server
import os
import re
import threading
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
CHUNK = 64 << 10


class RangeServer:
    """A threaded HTTP server on 127.0.0.1 (an ephemeral port) serving ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.reset()
        handler = type("Handler", (_Handler,), {"owner": self})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def reset(self) -> None:
        """No faults, counters at zero."""
        self.ignore_range = False
        self.drop = 0
        self.unavailable = 0
        self.change_etag_after: int | None = None
        self.short_body = False
        self.long_body = False
        self.stall = 0
        self.no_etag = False
        self.requests = 0
        self.body_bytes = 0
        self.ranges: list[tuple[int, int]] = []

    def url(self, name: str) -> str:
        """The URL of ``name`` under the served directory."""
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def stop(self) -> None:
        """Release stalled requests and shut down."""
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    owner: RangeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- quiet
        pass

    def _take(self, name: str) -> bool:
        """Consume one count of the fault ``name``."""
        with self.owner.lock:
            left = getattr(self.owner, name)
            if left > 0:
                setattr(self.owner, name, left - 1)
                return True
        return False

    def do_GET(self) -> None:  # noqa: N802 -- the standard library's name
        owner = self.owner
        with owner.lock:
            owner.requests += 1
            number = owner.requests
        if self._take("stall"):
            owner.released.wait(60)
            self.close_connection = True
            return
        if self._take("drop"):
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if self._take("unavailable"):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path = owner.root / self.path.split("?", 1)[0].lstrip("/")
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = path.stat().st_size
        changed = owner.change_etag_after is not None and number >= owner.change_etag_after
        etag = f'"{path.stat().st_mtime_ns:x}-{size:x}{"-2" if changed else ""}"'
        match = _RANGE.match(self.headers.get("Range", ""))
        if owner.ignore_range or match is None:
            self.send_response(200)
            self._identity(etag, path)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self._send(path, 0, size)
            return
        start = int(match.group(1))
        end = min(int(match.group(2)) + 1 if match.group(2) else size, size)
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        sent = end - start
        if owner.short_body:
            sent = max(sent // 2, 1) if sent > 1 else 0
        if owner.long_body:
            sent += 16
        self.send_response(206)
        self._identity(etag, path)
        self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Content-Length", str(sent))
        self.end_headers()
        with owner.lock:
            owner.ranges.append((start, end))
        self._send(path, start, sent)

    def _identity(self, etag: str, path: Path) -> None:
        if not self.owner.no_etag:
            self.send_header("ETag", etag)
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))

    def _send(self, path: Path, start: int, length: int) -> None:
        """Write ``length`` bytes from ``start`` (zeros past the end of the
        file), counting what the socket took; stop when the client leaves."""
        with open(path, "rb") as handle:
            handle.seek(start)
            while length > 0:
                chunk = handle.read(min(CHUNK, length)) or b"\0" * min(CHUNK, length)
                # Counted before it is sent: the client may read it and go
                # on before this thread runs again.
                with self.owner.lock:
                    self.owner.body_bytes += len(chunk)
                try:
                    self.wfile.write(chunk)
                except OSError:
                    with self.owner.lock:
                        self.owner.body_bytes -= len(chunk)
                    self.close_connection = True
                    return
                length -= len(chunk)


def serve(root: str | os.PathLike[str]) -> RangeServer:
    """A started server for ``root``."""
    return RangeServer(Path(root))
