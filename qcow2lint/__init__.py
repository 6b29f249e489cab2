"""qcow2lint: a linter for QEMU qcow2 disk images.

The Python API is two functions; ``import qcow2lint`` stays cheap because
they import the reader and the engine only when called.

Read an image's structures (read-only; the file stays open so the L2 tables
and refcount blocks can be streamed)::

    import qcow2lint

    with qcow2lint.read("disk.qcow2") as image_file:
        header = image_file.image.header       # the parsed structures
        print(header.version, header.cluster_size, header.size)
        for batch in image_file.l2_batches():  # numpy uint64 arrays, streamed
            print(batch.entries.shape)

Lint an image with the discovered configuration (``.qcow2lint.yaml``,
``qcow2lint.yaml`` or ``pyproject.toml`` from the working directory
upwards), a configuration file, or a :class:`qcow2lint.config.Config`::

    report = qcow2lint.lint("disk.qcow2")
    for finding in report.findings:
        print(finding.code, finding.rule, finding.severity, hex(finding.offset), finding.location, finding.message)

    strict = qcow2lint.lint("disk.qcow2", config="ci/qcow2lint.yaml")

Judge an upload before anything else opens it (see docs/untrusted.md)::

    report = qcow2lint.lint("upload.qcow2", preset="untrusted")
    if not report.passed:
        reasons = [f"{f.rule}: {f.message}" for f in report.findings if f.severity >= qcow2lint.Severity.ERROR]

Lint a fleet on a Dask cluster into two Dask DataFrames, one row per finding
and one per image (``qcow2lint[fleet]``; see docs/fleet.md)::

    findings, images = qcow2lint.lint_frames(["/srv/images"], preset="untrusted")
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from qcow2lint.config import Config
    from qcow2lint.findings import ImageReport as Report
    from qcow2lint.reader import ImageFile
    from qcow2lint.records import Image

__all__ = ["Config", "Image", "ImageError", "ImageFile", "Report", "__version__", "lint", "read"]

#: Names imported on first use (``qcow2lint.Report`` etc.), keeping ``import qcow2lint`` cheap.
_LAZY = {
    "Config": ("qcow2lint.config", "Config"),
    "ConfigError": ("qcow2lint.config", "ConfigError"),
    "Finding": ("qcow2lint.findings", "Finding"),
    "Image": ("qcow2lint.records", "Image"),
    "ImageError": ("qcow2lint.filekind", "ImageError"),
    "ImageFile": ("qcow2lint.reader", "ImageFile"),
    "lint_frames": ("qcow2lint.fleet", "lint_frames"),
    "Report": ("qcow2lint.findings", "ImageReport"),
    "Severity": ("qcow2lint.findings", "Severity"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'qcow2lint' has no attribute {name!r}")


def read(
    path: str | os.PathLike[str], *, storage_options: dict[str, Any] | None = None, timeout: float | None = None
) -> ImageFile:
    """Read the qcow2 image at ``path`` without judging it.

    ``path`` may be a URL (``https://``, ``s3://``, any fsspec protocol;
    the ``remote`` extra): only the image's metadata is fetched, with the
    fsspec ``storage_options`` and a ``timeout`` in seconds per request
    (see docs/remote.md).

    Returns a :class:`qcow2lint.reader.ImageFile` whose ``image`` is a
    :class:`qcow2lint.records.Image`: the header, header extensions, L1 and
    refcount tables, snapshots, bitmaps, and the structures that could not
    be read (``image.problems``).  The file stays open so that
    ``l2_batches()`` and ``refcount_blocks()`` of the ImageFile can stream
    the big tables; use it as a context manager (or call ``close()``) to
    close it.  Broken images are read as far as possible, never refused.

    Raises :class:`qcow2lint.ImageError` when the file cannot be read
    at all (missing, a directory, no permission, a Git LFS pointer file).

    Run from the repository's root (the test suite runs these examples):

    >>> with qcow2lint.read("examples/demo.qcow2") as image_file:
    ...     image_file.image.header.version, image_file.image.header.cluster_size
    (3, 4096)
    """
    from qcow2lint.reader import read_image

    return read_image(path, _remote(path, storage_options, timeout))


def _remote(path: str | os.PathLike[str], storage_options: dict[str, Any] | None, timeout: float | None) -> Any:
    """What the reader takes for a URL (None for a path)."""
    from qcow2lint.source import is_url

    if not is_url(path):
        return None
    return {"storage_options": storage_options or {}, "timeout": timeout}


_REGISTRY: Any = None


def _registry() -> Any:
    global _REGISTRY
    if _REGISTRY is None:
        from qcow2lint.registry import load_registry

        _REGISTRY = load_registry()
    return _REGISTRY


def lint(
    path: str | os.PathLike[str],
    config: Config | str | os.PathLike[str] | None = None,
    *,
    preset: str | None = None,
    deep: bool = False,
    statistics: bool = False,
    storage_options: dict[str, Any] | None = None,
    timeout: float | None = None,
) -> Report:
    """Lint the qcow2 image at ``path`` and return its report.

    ``path`` may be a URL, read as :func:`read` reads it (``storage_options``
    and ``timeout`` apply to URLs); the report names it without credentials.

    ``config`` is None (discover ``.qcow2lint.yaml`` / ``qcow2lint.yaml`` /
    ``pyproject.toml`` from the working directory upwards, else the
    defaults), the path of a configuration file, or a
    :class:`qcow2lint.config.Config`.  ``preset`` (``default``, ``strict``,
    ``pedantic``, ``untrusted``) starts from a built-in preset instead of
    discovering a file; a ``config`` path then applies on top of it (a
    ``Config`` with a preset is a ValueError).  ``deep`` also decompresses every
    compressed cluster; ``statistics`` fills ``report.stats`` with qemu-img
    check's figures.  ``per-file-ignores`` of the configuration apply.

    The report (:class:`qcow2lint.findings.ImageReport`) has ``findings``
    (sorted by offset, each with ``rule``, ``code``, ``severity``,
    ``offset``, ``location`` and ``message``, and ``id`` / ``caused_by``:
    a finding that follows from a root cause names its ``id``, see
    ``report.roots()`` and docs/root-causes.md), ``counts()`` per severity
    (every finding, including those past max-findings-per-rule),
    ``stats``, and the verdict: ``passed`` (no error-level finding) or
    ``ok(fail_level)``.

    Raises :class:`qcow2lint.ImageError` when the file cannot be read
    at all, :class:`qcow2lint.config.ConfigError` for a bad configuration
    (also one that enables no rule).

    Run from the repository's root (the test suite runs these examples):

    >>> report = qcow2lint.lint("examples/demo.qcow2")
    >>> [f.rule for f in report.findings]
    ['autoclear-unknown-bits', 'header-padding-nonzero', 'l2-reserved-bits']
    >>> report.counts()
    {'error': 1, 'warning': 2, 'info': 0}
    >>> report.passed, report.ok("warning")
    (False, False)
    >>> [f.rule for f in qcow2lint.lint("examples/demo.qcow2", preset="default").findings if f.severity >= qcow2lint.Severity.ERROR]
    ['l2-reserved-bits']
    """
    from qcow2lint.config import Config, load_config, require_rules
    from qcow2lint.filekind import ImageError
    from qcow2lint.runner import lint_image

    registry = _registry()
    if isinstance(config, Config):
        if preset is not None:
            raise ValueError("give a preset or a Config, not both")
        settings = config
    else:
        settings = load_config(registry, config, preset=preset)
    report = lint_image(
        os.fspath(path), require_rules(settings), registry, statistics, deep, _remote(path, storage_options, timeout)
    )
    if report.error is not None:
        raise ImageError(report.error)
    return report
