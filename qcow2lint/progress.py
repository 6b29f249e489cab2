"""A transient progress line on stderr for images that take a while.

Shown only where a person is watching: stderr is a terminal, the ``CI``
environment variable is not set, and the report format is not a machine
format (the caller decides that).  Nothing is drawn for an image checked in
under about a second (``QCOW2LINT_PROGRESS_DELAY`` seconds, default 1), so
quick runs print exactly what they print without a terminal.  ``rich`` is
imported only when a line is actually drawn.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

from qcow2lint.text import escape as printable

DEFAULT_DELAY = 1.0


def wanted(machine_format: bool) -> bool:
    """True when a progress line may be drawn on stderr."""
    if machine_format or os.environ.get("CI"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _delay() -> float:
    try:
        return max(0.0, float(os.environ.get("QCOW2LINT_PROGRESS_DELAY", DEFAULT_DELAY)))
    except ValueError:
        return DEFAULT_DELAY


class Progress:
    """``with progress.waiting(index, path):`` around the wait for one image."""

    def __init__(self, total: int, delay: float | None = None, colour: bool = False) -> None:
        self.total = total
        self.colour = colour
        self.delay = _delay() if delay is None else delay
        self._lock = threading.Lock()
        self._token = 0
        self._display: Any = None

    def _show(self, token: int, index: int, path: str) -> None:
        with self._lock:
            if token != self._token:
                return  # the image finished meanwhile
            try:
                from rich.console import Console
                from rich.markup import escape
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    SpinnerColumn,
                    TextColumn,
                    TimeElapsedColumn,
                )
                from rich.progress import (
                    Progress as RichProgress,
                )
            except ImportError:  # rich is optional: no progress line then
                return
            display = RichProgress(
                SpinnerColumn(),
                TextColumn("checking {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                # colour as --color and NO_COLOR say for stderr; without it,
                # no escape sequence at all (bold, reverse) reaches the terminal
                console=Console(
                    file=sys.stderr, color_system="auto" if self.colour else None, no_color=not self.colour
                ),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            # a file name is text from the file system: no markup, no control characters
            display.add_task(escape(printable(path)), total=self.total, completed=index)
            display.start()
            self._display = display

    @contextlib.contextmanager
    def waiting(self, index: int, path: str) -> Iterator[None]:
        """Draw the line if the image at ``index`` takes longer than the delay."""
        with self._lock:
            self._token += 1
            token = self._token
        from qcow2lint.source import display_name, is_url

        if is_url(path):  # shown without credentials
            path = display_name(path)
        timer = threading.Timer(self.delay, self._show, args=(token, index, path))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:
                self._token += 1
                display, self._display = self._display, None
            if display is not None:
                display.stop()  # transient: the line is erased before any output
