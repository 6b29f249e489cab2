"""Checks many images, in this process or in parallel worker processes.

:func:`run` yields one :class:`Outcome` per image **in the order of the
input**, whatever the number of jobs, so every report built from the
outcomes is identical for ``--jobs 1`` and ``--jobs N``.

Workers are started with the ``spawn`` method (no state inherited by
``fork``): :func:`init_worker` loads the rule registry and the configuration
once per worker process, and :func:`check_one` checks one image.  Anything
that goes wrong while checking an image, including a worker process that
dies (a crashing native extension, the OOM killer), becomes that image's
error; the other images are still checked.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, cast

import attrs

from qcow2lint.findings import ImageReport
from qcow2lint.recordtype import Record

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor


@attrs.frozen(repr=False)
class Job(Record):
    """What every image of a run is checked with (picklable, sent to workers)."""

    #: The ``--config`` argument; None discovers the configuration from the
    #: working directory (workers inherit it).
    config: str | None = None
    want_stats: bool = False
    deep: bool = False
    dump: bool = False
    #: The ``--preset`` argument: the base configuration, no discovery.
    preset: str | None = None
    #: ``--select`` / ``--ignore`` / ... on top of the configuration
    #: (a :class:`qcow2lint.selection.CommandLine`).
    command_line: Any = None
    #: For URLs: ``storage_options`` and ``timeout`` (docs/remote.md).
    remote: Any = None


@attrs.frozen(repr=False)
class Outcome(Record):
    """One image's report and, with ``Job.dump``, its standard dump."""

    report: ImageReport
    dump_text: str | None = None
    dump_error: str | None = None


_STATE: tuple[Any, Any, Job] | None = None  # (registry, config, job) of this process


def init_worker(job: Job, registry: Any = None, config: Any = None) -> None:
    """Load the registry and the configuration once for this process."""
    global _STATE
    if registry is None:
        from qcow2lint.registry import load_registry

        registry = load_registry()
    if config is None:
        from qcow2lint.config import load_config

        config = load_config(registry, job.config, preset=job.preset)
        if job.command_line is not None:
            from qcow2lint.selection import apply_command_line

            config = apply_command_line(config, registry, job.command_line)
    _STATE = (registry, config, job)


def lint_image(
    path: str, config: Any, registry: Any, want_stats: bool = False, deep: bool = False, remote: Any = None
) -> ImageReport:
    """Lint one image as the command line does: the engine's report, minus
    the findings that the configuration's ``per-file-ignores`` silence.
    ``remote``: storage options and timeout for a URL."""
    from qcow2lint.config import apply_ignores
    from qcow2lint.engine import lint_path

    return apply_ignores(config, lint_path(path, config, registry, want_stats, deep, remote=remote))


def check_one(path: str) -> Outcome:
    """Check one image with this process's registry and configuration; never raises."""
    try:
        if _STATE is None:
            raise RuntimeError("the worker was not initialised")
        registry, config, job = _STATE
        dump_text = dump_error = None
        if job.dump:
            from qcow2lint.reader import ImageError
            from qcow2lint.report.dump import build_dump

            try:
                result = build_dump(path, remote=job.remote)
            except ImageError:
                pass  # the check below reports why
            else:
                dump_text, dump_error = result.text, result.error
        report = lint_image(path, config, registry, job.want_stats, job.deep, job.remote)
        return Outcome(report, dump_text, dump_error)
    except Exception as exc:  # noqa: BLE001 -- one image's crash must not stop the run
        from qcow2lint.source import display_name, is_url, redact
        from qcow2lint.text import exception_text

        name, text = path, exception_text(exc)
        if is_url(path):  # never a credential in a report
            name, text = display_name(path), redact(text)
        if isinstance(exc, MemoryError):  # a limit, not a bug
            return Outcome(ImageReport(name, error=f"{name}: {text} while checking this image"))
        return Outcome(ImageReport(name, error=f"{name}: internal error while checking: {text}"))


def _crashed(path: str, exitcode: int | None) -> Outcome:
    import signal

    from qcow2lint.source import display_name, is_url

    path = display_name(path) if is_url(path) else path

    if exitcode is not None and exitcode < 0:
        try:
            how = f"killed by signal {-exitcode} ({signal.Signals(-exitcode).name})"
        except ValueError:
            how = f"killed by signal {-exitcode}"
    elif exitcode is not None:
        how = f"exit code {exitcode}"
    else:
        how = "it died"
    return Outcome(ImageReport(path, error=f"{path}: the worker process checking this image crashed ({how})"))


def _isolated_main(job: Job, path: str, connection: Any) -> None:
    init_worker(job)
    connection.send(check_one(path))
    connection.close()


def _check_isolated(context: Any, job: Job, path: str) -> Outcome:
    """Check ``path`` alone in a fresh process; a crash is this image's error."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_isolated_main, args=(job, path, sender), daemon=True)
    process.start()
    sender.close()
    try:
        outcome = receiver.recv()
    except (EOFError, OSError):
        outcome = None
    finally:
        receiver.close()
        process.join()
    return outcome if isinstance(outcome, Outcome) else _crashed(path, process.exitcode)


def cpu_count() -> int:
    """CPUs this process may run on (``--jobs 0``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


Waiting = Callable[[int, str], AbstractContextManager[object]]


def _no_progress(index: int, path: str) -> AbstractContextManager[object]:
    return nullcontext()


def run(
    paths: Sequence[str],
    job: Job,
    jobs: int = 1,
    *,
    registry: Any = None,
    config: Any = None,
    waiting: Waiting | None = None,
) -> Iterator[Outcome]:
    """Check ``paths`` with ``jobs`` processes (1: in this process; 0: one per
    CPU) and yield their outcomes in input order.

    ``registry`` and ``config`` are this process's already loaded ones (used
    when ``jobs`` is 1).  ``waiting(index, path)`` is entered while the run
    waits for the image at ``index`` (the progress display hooks in there).
    """
    jobs = cpu_count() if jobs == 0 else jobs
    waiting = waiting or _no_progress
    if jobs <= 1 or len(paths) <= 1:
        init_worker(job, registry, config)
        for index, path in enumerate(paths):
            with waiting(index, path):
                outcome = check_one(path)
            yield outcome
        return
    yield from _run_parallel(paths, job, min(jobs, len(paths)), waiting)


def _run_parallel(paths: Sequence[str], job: Job, jobs: int, waiting: Waiting) -> Iterator[Outcome]:
    # Imported here: a run of one process never pays for them.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=init_worker, initargs=(job,))

    pool = new_pool()
    try:
        futures: list[Future[Outcome] | None] = [pool.submit(check_one, path) for path in paths]
        for index, path in enumerate(paths):
            with waiting(index, path):
                try:
                    # dropped once taken: a streamed report holds no outcome it has written
                    taken, futures[index] = cast("Future[Outcome]", futures[index]), None
                    outcome = taken.result()
                except BrokenProcessPool:
                    # A worker died; every unfinished image of the pool fails
                    # with it.  Check this image alone to learn whether it is
                    # the culprit, then resubmit the others to a fresh pool.
                    outcome = _check_isolated(context, job, path)
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = new_pool()
                    for later in range(index + 1, len(paths)):
                        future = futures[later]
                        if future is None or not future.done() or future.cancelled() or future.exception() is not None:
                            futures[later] = pool.submit(check_one, paths[later])
                except Exception as exc:  # noqa: BLE001 -- e.g. an unpicklable result
                    from qcow2lint.source import display_name, is_url, redact
                    from qcow2lint.text import exception_text

                    name, text = (
                        (display_name(path), redact(exception_text(exc)))
                        if is_url(path)
                        else (path, exception_text(exc))
                    )
                    outcome = Outcome(ImageReport(name, error=f"{name}: internal error: {text}"))
            yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
