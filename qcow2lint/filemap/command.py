"""``qcow2lint map``: build the map of one image and write it in one format."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from qcow2lint.filemap.analysis import FileMap, MapBuilder
from qcow2lint.options import MAP_FORMATS as FORMATS
from qcow2lint.outputs import output_problem
from qcow2lint.text import exception_text

EXIT_OK, EXIT_ERROR = 0, 2


class MapError(Exception):
    """An input or output the command cannot use: one line, exit 2."""


def build_map(
    path: str | os.PathLike[str],
    deep: bool = False,
    config: object | None = None,
    registry: object | None = None,
) -> FileMap:
    """Lint ``path`` once (the configuration discovered as ``check`` does,
    unless given) and build its map from that same pass."""
    from qcow2lint.config import ConfigError, load_config
    from qcow2lint.engine import run_rules
    from qcow2lint.reader import ImageError, open_image
    from qcow2lint.registry import RegistryError, load_registry

    try:
        rules = registry if registry is not None else load_registry()
        settings = config if config is not None else load_config(rules)  # type: ignore[arg-type]
    except (ConfigError, RegistryError) as exc:
        raise MapError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    try:
        with open_image(path) as image_file:
            builder = MapBuilder(image_file.image)
            stats: dict[str, int] = {}
            findings = run_rules(image_file, settings, rules, stats, deep, observe=builder.observe)  # type: ignore[arg-type]
            return builder.build(os.fspath(path), findings, stats)
    except ImageError as exc:
        raise MapError(str(exc)) from exc


def format_of(output: str | None, fmt: str | None) -> str:
    """The format: ``fmt``, else ``output``'s suffix, else json (stdout)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise MapError(f"unknown format {fmt!r} (use {', '.join(FORMATS)})")
        return fmt
    if output is None:
        return "json"
    suffix = Path(output).suffix.lower().lstrip(".")
    if suffix == "htm":
        suffix = "html"
    if suffix not in FORMATS:
        raise MapError(f"-o {output}: cannot tell the format from the suffix (use --format {'|'.join(FORMATS)})")
    return suffix


def render(filemap: FileMap, fmt: str) -> bytes:
    """The map in format ``fmt``."""
    from qcow2lint.filemap import render as draw

    if fmt == "json":
        return draw.render_json(filemap).encode()
    if fmt == "png":
        return draw.render_png(filemap)
    if fmt == "svg":
        return draw.render_svg(filemap).encode()
    from qcow2lint.filemap.page import render_html

    return render_html(filemap).encode()


def run_map(
    image: str,
    output: str | None,
    fmt: str | None,
    deep: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The ``map`` command: write the map of ``image`` to ``output`` (json to
    ``stdout`` when no output is named); errors are one line on ``stderr``.
    Returns the exit code: 0 written, 2 bad input or output."""
    import sys

    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        if output is not None:
            problem = output_problem(Path(output))
            if problem is not None:
                raise MapError(f"-o {output}: {problem}")
        chosen = format_of(output, fmt)
        if output is None and chosen != "json":
            raise MapError(f"--format {chosen} needs -o FILE (only json goes to standard output)")
        if not os.path.lexists(image):
            raise MapError(f"{image}: no such file or directory")
        if os.path.isdir(image):
            raise MapError(f"{image}: is a directory")
        data = render(build_map(image, deep), chosen)
        if output is None:
            out.write(data.decode())
            out.flush()
        else:
            try:
                Path(output).write_bytes(data)
            except OSError as exc:
                raise MapError(f"{output}: cannot write: {exc.strerror or exc}") from exc
    except MapError as exc:
        err.write(f"qcow2lint: error: {exc}\n")
        return EXIT_ERROR
    except MemoryError as exc:
        err.write(f"qcow2lint: error: {exception_text(exc)}\n")
        return EXIT_ERROR
    return EXIT_OK
