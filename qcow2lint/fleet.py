"""Checks many images on a Dask distributed cluster (``check --scheduler``),
and the same checks as Dask DataFrames (:func:`lint_frames`).

This is a runner beside :mod:`qcow2lint.runner`'s ``--jobs``, with the same
contract: :func:`run` yields one :class:`~qcow2lint.runner.Outcome` per
image in the order of the input, so every report is identical to a local
run.  The engine knows nothing of Dask: a task calls
:func:`qcow2lint.runner.check_one`, the function the local runner calls, on
each image of its batch, after loading the registry and the configuration
once per worker process (kept for the next task of the same run).

Images are batched: Dask spends about a millisecond on each task, which is
most of the time a small image takes, so a task checks a batch of images
(about four tasks per worker thread, at most :data:`MAX_BATCH` images so
that one task stays short and the load stays balanced).  Only a bounded
number of batches is in flight, and only the results that came back ahead
of their turn are held, so the client's memory does not grow with the
number of images.

A worker process that dies (a crashing native extension, the OOM killer, a
killed container) takes its running task with it; Dask runs the task again
elsewhere, up to the scheduler's ``allowed-failures`` setting.  A batch
that keeps killing workers is checked again one image per task, and an
image that still kills its worker becomes that image's error: no image is
ever lost, and the other images' results stand.

Dask (``qcow2lint[fleet]``) and pandas are imported only here, only when
used.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from qcow2lint.findings import ImageReport
from qcow2lint.results import CHECK_FIGURES
from qcow2lint.runner import Job, Outcome, Waiting, _no_progress

if TYPE_CHECKING:
    import dask.dataframe

#: The most images one task checks: a task stays short, so a lost worker
#: costs little work and the last tasks do not keep one worker busy alone.
MAX_BATCH = 64
#: Tasks per worker thread when the images are many: enough to balance the
#: load, few enough that the per-task overhead stays small.
TASKS_PER_THREAD = 4
#: How long to wait for a scheduler before giving up (seconds).
CONNECT_TIMEOUT = 10
#: How ``check --scheduler`` names the cluster it starts on this machine.
LOCAL = "local"

INSTALL_HINT = "pip install 'qcow2lint[fleet]'"


class FleetError(Exception):
    """The cluster cannot be used: the message is one line."""


def require_dask() -> None:
    """Raise :class:`FleetError` naming the extra when dask.distributed is missing."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise FleetError(f"--scheduler needs Dask ({exc.name} is not installed): {INSTALL_HINT}") from None


def batch_size(count: int, threads: int) -> int:
    """Images per task for ``count`` images on ``threads`` worker threads.

    >>> batch_size(2000, 2), batch_size(40, 2), batch_size(3, 8)
    (64, 5, 1)
    """
    return max(1, min(MAX_BATCH, math.ceil(count / (TASKS_PER_THREAD * max(1, threads)))))


# ---------------------------------------------------------------------------
# on the workers
# ---------------------------------------------------------------------------


def _ready(job: Job) -> None:
    """Load the registry and the configuration of ``job`` once per worker process."""
    from qcow2lint import runner

    state = runner._STATE
    if state is None or state[2] != job:
        runner.init_worker(job)


def check_batch(job: Job, paths: Sequence[str]) -> list[Outcome]:
    """Check ``paths`` on this worker, each with the local runner's :func:`check_one`."""
    from qcow2lint.runner import check_one

    try:
        _ready(job)
    except Exception as exc:  # noqa: BLE001 -- a configuration the worker cannot load
        from qcow2lint.text import exception_text

        return [
            Outcome(ImageReport(p, error=f"{p}: the worker cannot check images: {exception_text(exc)}")) for p in paths
        ]
    return [check_one(path) for path in paths]


# ---------------------------------------------------------------------------
# on the client
# ---------------------------------------------------------------------------


def worker_config() -> dict[str, Any]:
    """The Dask settings ``--scheduler local`` starts its workers with.

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536``,
    which makes the C library hand freed memory back to the system at once:
    qcow2lint allocates and frees a table buffer per L2 batch, and pays for
    it in page faults (a third more CPU per image).  The workers' sampling
    profiler (for the dashboard) is off too.
    """
    import dask

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {}
    return {
        "distributed.nanny.pre-spawn-environ": {k: v for k, v in environ.items() if k != "MALLOC_TRIM_THRESHOLD_"},
        "distributed.worker.profile.enabled": False,
    }


def connect(scheduler: str, workers: int = 0) -> tuple[Any, Any]:
    """A Dask ``Client`` for ``scheduler`` (an address such as
    ``tcp://host:8786``, or ``local``: a cluster of ``workers`` processes of
    one thread each on this machine; 0 or 1, ``--jobs``'s default, for one
    per CPU: a cluster of one worker is no use), and the cluster
    this started (None for an address).  Raises :class:`FleetError`."""
    require_dask()
    import logging

    import dask
    from distributed import Client, LocalCluster

    from qcow2lint.text import exception_text

    cluster = None
    try:
        if scheduler == LOCAL:
            from qcow2lint.runner import cpu_count

            # The scheduler's HTTP server on a free port (no clash, no
            # warning about one), and none of the cluster's own logging.
            with dask.config.set(worker_config()):
                cluster = LocalCluster(
                    n_workers=workers if workers > 1 else cpu_count(),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",
                    worker_dashboard_address=":0",
                    silence_logs=logging.CRITICAL,
                )
            client = Client(cluster, set_as_default=False)
        else:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # noqa: BLE001 -- any failure to reach the cluster is one line
        if cluster is not None:
            cluster.close()
        where = "cannot start a local cluster" if scheduler == LOCAL else f"cannot reach the scheduler {scheduler}"
        raise FleetError(f"--scheduler: {where}: {exception_text(exc)}") from None
    return client, cluster


def _threads(client: Any) -> int:
    try:
        return max(1, sum(client.nthreads().values()))
    except Exception:  # noqa: BLE001 -- a guess is enough to size batches
        return 1


def _error_outcomes(paths: Sequence[str], exc: BaseException) -> list[Outcome]:
    from qcow2lint.text import exception_text

    return [Outcome(ImageReport(p, error=f"{p}: internal error: {exception_text(exc)}")) for p in paths]


def run(
    paths: Sequence[str],
    job: Job,
    scheduler: str,
    workers: int = 0,
    *,
    waiting: Waiting | None = None,
) -> Iterator[Outcome]:
    """Check ``paths`` on the Dask cluster ``scheduler`` (see :func:`connect`)
    and yield their outcomes in input order, as :func:`qcow2lint.runner.run`.

    The cluster is reached (or started) when this is called, so that a
    scheduler that cannot be reached raises :class:`FleetError` before any
    output; it is closed once the last outcome is yielded.
    """
    if not paths:
        return iter(())
    client, cluster = connect(scheduler, workers)
    return _outcomes(client, cluster, paths, job, waiting or _no_progress)


def _close(client: Any, cluster: Any) -> None:
    try:
        client.close()
        if cluster is not None:
            cluster.close()
    except Exception:  # noqa: BLE001,S110 -- closing a cluster must not fail a finished run
        pass


class _Batches:
    """The batches of a run in flight: submitted, split after killing
    workers, and done (the results not yet yielded)."""

    def __init__(self, client: Any, job: Job, paths: Sequence[str], size: int) -> None:
        from distributed import as_completed

        self.client = client
        self.job = job
        self.paths = paths
        self.size = size
        self.completed = as_completed(loop=client.loop)
        self.pending = iter(self.completed)
        #: future -> (batch number, index of the image within the batch, or None for the whole batch)
        self.owner: dict[Any, tuple[int, int | None]] = {}
        #: batch number -> the outcomes of its images checked one per task so far
        self.split: dict[int, list[Outcome | None]] = {}
        self.done: dict[int, list[Outcome]] = {}

    def images(self, number: int) -> Sequence[str]:
        return self.paths[number * self.size : (number + 1) * self.size]

    def submit(self, number: int) -> None:
        future = self.client.submit(check_batch, self.job, list(self.images(number)), pure=False)
        self.owner[future] = (number, None)
        self.completed.add(future)

    def step(self) -> None:
        """Wait for one task to finish and file its result."""
        from distributed.scheduler import KilledWorker

        future = next(self.pending)
        number, single = self.owner.pop(future)
        images = self.images(number) if single is None else [self.images(number)[single]]
        try:
            outcomes: list[Outcome] = future.result()
        except KilledWorker:
            if single is None and len(images) > 1:
                # Which image kills its worker?  Each alone, in a task of its own.
                self.split[number] = [None] * len(images)
                for index, path in enumerate(images):
                    one = self.client.submit(check_batch, self.job, [path], pure=False)
                    self.owner[one] = (number, index)
                    self.completed.add(one)
                return
            from qcow2lint.runner import _crashed

            outcomes = [_crashed(images[0], None)]
        except Exception as exc:  # noqa: BLE001 -- e.g. a result that cannot be sent back
            outcomes = _error_outcomes(images, exc)
        finally:
            future.release()
        if single is None:
            self.done[number] = outcomes
            return
        parts = self.split[number]
        parts[single] = outcomes[0]
        if all(part is not None for part in parts):
            del self.split[number]
            self.done[number] = [part for part in parts if part is not None]


def _outcomes(client: Any, cluster: Any, paths: Sequence[str], job: Job, waiting: Waiting) -> Iterator[Outcome]:
    try:
        size = batch_size(len(paths), _threads(client))
        batches = _Batches(client, job, paths, size)
        count = math.ceil(len(paths) / size)
        # Batches in flight ahead of the one being yielded: enough to keep
        # every worker busy, bounded so that results waiting for their turn
        # stay few.
        window = 2 * TASKS_PER_THREAD * _threads(client)
        submitted = min(count, window)
        for number in range(submitted):
            batches.submit(number)
        for index, path in enumerate(paths):
            number, within = divmod(index, size)
            if number not in batches.done:
                with waiting(index, path):
                    while number not in batches.done:
                        batches.step()
            outcome = batches.done[number][within]
            if within == len(batches.done[number]) - 1:
                del batches.done[number]
                if submitted < count:
                    batches.submit(submitted)
                    submitted += 1
            if index == len(paths) - 1:
                _close(client, cluster)  # before the last yield: the caller may never ask again
            yield outcome
    finally:
        _close(client, cluster)


# ---------------------------------------------------------------------------
# the DataFrame API
# ---------------------------------------------------------------------------

#: qemu-img check's figures (``report.stats``), one column each in the images frame.
STATS = CHECK_FIGURES
SEVERITIES = ("error", "warning", "info")


def _finding_meta() -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "path": pd.Series(dtype="string"),
            "rule": pd.Series(dtype="string"),
            "code": pd.Series(dtype="string"),
            "severity": pd.Series(dtype="string"),
            "offset": pd.Series(dtype="Int64"),
            "location": pd.Series(dtype="string"),
            "message": pd.Series(dtype="string"),
            "id": pd.Series(dtype="Int64"),
            "caused_by": pd.Series(dtype="Int64"),
        }
    )


def _image_meta() -> Any:
    import pandas as pd

    columns: dict[str, Any] = {"path": pd.Series(dtype="string"), "error": pd.Series(dtype="string")}
    columns |= {f"{name}s": pd.Series(dtype="Int64") for name in SEVERITIES}
    columns |= {name: pd.Series(dtype="Int64") for name in ("shown", "root_causes")}
    columns |= {name.replace("-", "_"): pd.Series(dtype="Int64") for name in STATS}
    return pd.DataFrame(columns)


def _finding_frame(outcomes: list[Outcome]) -> Any:
    import pandas as pd

    meta = _finding_meta()
    # Each finding as the JSON report spells it; the frame keeps the meta's columns.
    rows = [
        {"path": outcome.report.path, **finding.to_json()}
        for outcome in outcomes
        for finding in outcome.report.findings
    ]
    return pd.DataFrame(rows, columns=list(meta.columns)).astype(meta.dtypes.to_dict())


def _image_frame(outcomes: list[Outcome]) -> Any:
    import pandas as pd

    meta = _image_meta()
    rows = []
    for outcome in outcomes:
        report = outcome.report
        stats = report.stats or {}
        rows.append(
            {
                "path": report.path,
                "error": report.error,
                **{f"{name}s": count for name, count in report.counts().items()},
                "shown": report.shown(),
                "root_causes": len(report.roots()),
                **{name.replace("-", "_"): stats.get(name) for name in STATS},
            }
        )
    return pd.DataFrame(rows, columns=list(meta.columns)).astype(meta.dtypes.to_dict())


def lint_frames(
    inputs: Iterable[str | os.PathLike[str]],
    *,
    client: Any = None,
    config: str | os.PathLike[str] | None = None,
    preset: str | None = None,
    select: str | Sequence[str] | None = None,
    ignore: str | Sequence[str] = (),
    statistics: bool = True,
    deep: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
    partition_size: int | None = None,
) -> tuple[dask.dataframe.DataFrame, dask.dataframe.DataFrame]:
    """Lint images on Dask and return two lazy Dask DataFrames:
    ``(findings, images)``.

    ``inputs`` are files, directories (searched as ``check`` searches them)
    and glob patterns, or URLs where the ``remote`` extra reads them.
    The frames compute where Dask computes (the default ``distributed.Client``
    if there is one); ``client`` is only asked how many worker threads it
    has, to size the tasks;
    ``config`` a configuration file (None: discovered from the workers'
    working directory), ``preset`` a built-in preset, ``select`` and
    ``ignore`` rule names, codes or prefixes as ``--select`` and ``--ignore``
    say; ``statistics`` fills the qemu-img check figures, ``deep``
    decompresses every compressed cluster; ``storage_options`` are handed
    to fsspec for URLs and ``timeout`` bounds each request (seconds; see
    docs/remote.md); ``partition_size`` is the number of images per task
    (default: chosen from the number of images and worker threads).

    ``findings`` has one row per finding: ``path``, ``rule``, ``code``,
    ``severity``, ``offset``, ``location``, ``message``, ``id`` and
    ``caused_by`` (the ``id`` of its root cause, or null).  ``images`` has
    one row per image: ``path``, ``error`` (why it was not checked, else
    null), the findings per severity ``errors``, ``warnings`` and ``infos``
    (every finding, as the JSON report's summary counts them), ``shown``,
    ``root_causes`` and
    qemu-img check's figures (``leaks``, ``corruptions``, ...; null without
    statistics or when the image could not be read).  Both come from the
    same tasks: compute them together (``dask.compute(...)``, or
    ``to_parquet(..., compute=False)`` for both) so that each image is
    checked once.

    Raises :class:`FleetError` when Dask is not installed,
    :class:`qcow2lint.config.ConfigError` for a bad configuration or
    selection.
    """
    require_dask()
    import dask.bag

    from qcow2lint.config import load_config
    from qcow2lint.inputs import Unmatched, expand
    from qcow2lint.registry import load_registry
    from qcow2lint.selection import CommandLine, apply_command_line

    line = CommandLine(None if select is None else _names(select), (), _names(ignore), (), None)
    # The configuration is loaded here too: a bad one fails now, and its
    # ``exclude`` applies to the directories searched, as for ``check``.
    registry = load_registry()
    settings = apply_command_line(load_config(registry, config, preset=preset), registry, line)
    # For URLs: the fsspec storage options and the per-request timeout, as
    # ``check --storage-option/--timeout`` hand them to the reader.
    remote = {"storage_options": dict(storage_options or {}), "timeout": timeout}
    entries = expand(list(inputs), settings.excluded if settings.exclude else None, remote=remote)
    paths = [str(entry) if isinstance(entry, Unmatched) else entry for entry in entries]
    job = Job(None if config is None else os.fspath(config), statistics, deep, False, preset, line or None, remote)
    unmatched = {str(entry): entry for entry in entries if isinstance(entry, Unmatched)}
    threads = _threads(client) if client is not None else os.cpu_count() or 1
    size = partition_size or batch_size(len(paths), threads)
    bag = dask.bag.from_sequence(paths, partition_size=size) if paths else dask.bag.from_sequence([], npartitions=1)
    parts = bag.map_partitions(_check_partition, job, unmatched).to_delayed()
    import dask
    import dask.dataframe

    finding_parts = [dask.delayed(_finding_frame)(part) for part in parts]
    image_parts = [dask.delayed(_image_frame)(part) for part in parts]
    return (
        dask.dataframe.from_delayed(finding_parts, meta=_finding_meta(), verify_meta=False),
        dask.dataframe.from_delayed(image_parts, meta=_image_meta(), verify_meta=False),
    )


def _names(items: str | Sequence[str]) -> tuple[str, ...]:
    """Rule names as ``--select`` takes them: a list, or comma-separated."""
    words = [items] if isinstance(items, str) else list(items)
    return tuple(name.strip() for word in words for name in word.split(","))


def _check_partition(paths: Iterable[str], job: Job, unmatched: Mapping[str, Any]) -> list[Outcome]:
    """One task of :func:`lint_frames`: the arguments that named no file are
    their error rows, the others are checked."""
    items = list(paths)
    checked = iter(check_batch(job, [p for p in items if p not in unmatched]))
    return [Outcome(ImageReport(unmatched[p].argument, error=p)) if p in unmatched else next(checked) for p in items]
