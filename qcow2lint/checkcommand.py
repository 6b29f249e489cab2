"""What ``qcow2lint check`` does once its options are parsed, without typer.

The typer command in :mod:`qcow2lint.cli` parses the options and calls
:func:`check`.  A plain ``qcow2lint check IMAGE...`` (no option) does not
need typer at all: :func:`qcow2lint.entry.main` calls :func:`main_plain`,
which saves importing typer and building the command line (about a sixth
of a small image's check, issue 13).  Both paths print the same bytes and
exit with the same codes: :func:`echo` writes through typer's (click's)
``echo`` once the CLI is loaded, and as click does otherwise, and
:func:`main_plain` ends a run as typer's standalone mode and
:func:`qcow2lint.cli.main` do.
"""

from __future__ import annotations

import enum
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from qcow2lint.config import ConfigError, load_config
from qcow2lint.findings import Severity
from qcow2lint.registry import Registry, RegistryError, load_registry
from qcow2lint.text import exception_text

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
#: The exit code of an interrupted run, as typer's standalone mode gives it.
EXIT_INTERRUPTED = 130

#: Set by :mod:`qcow2lint.cli` to typer's ``echo``: every command then
#: writes as click does.  None before (the plain path): :func:`plain_echo`.
_echo_with: Callable[..., Any] | None = None


def use_echo(function: Callable[..., Any]) -> None:
    """Write every message with ``function`` (``typer.echo``) from now on."""
    global _echo_with
    _echo_with = function


def echo(message: str = "", nl: bool = True, err: bool = False, color: bool | None = None) -> None:
    """Write ``message`` to stdout (``err``: stderr), as ``typer.echo`` does."""
    (_echo_with or plain_echo)(message, nl=nl, err=err, color=color)


#: The ANSI sequences click removes from text that does not go to a terminal.
_ANSI = re.compile(r"\033\[[;?0-9]*[a-zA-Z]")


def plain_echo(message: str = "", nl: bool = True, err: bool = False, color: bool | None = None) -> None:
    """click's ``echo`` for a text message to the standard streams: add the
    newline, strip colour (``color`` None: unless the stream is a terminal;
    False: always), write, flush.  (:func:`plain_streams` rules out the
    streams on which click's would do more.)"""
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    out = message + "\n" if nl else message
    if out and (color is False or (color is None and not _isatty(stream))):
        out = _ANSI.sub("", out)
    if out:
        stream.write(out)
    stream.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except Exception:  # noqa: BLE001 -- as click: a stream that cannot say is no terminal
        return False


def plain_streams() -> bool:
    """Whether :func:`plain_echo` writes exactly what click's ``echo`` would:
    stdout and stderr are there, say their encoding and error handler, and
    are not ASCII-only (click would wrap such a stream to write UTF-8)."""
    import codecs

    for stream in (sys.stdout, sys.stderr):
        encoding = getattr(stream, "encoding", None)
        if stream is None or not encoding or getattr(stream, "errors", None) is None:
            return False
        try:
            if codecs.lookup(encoding).name == "ascii":
                return False
        except LookupError:
            return False
    return True


class _QuietFlush:
    """A stream whose ``flush`` ignores a broken pipe (click's
    PacifyFlushWrapper), so that the interpreter's last flush is silent."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def flush(self) -> None:
        import errno

        try:
            self.wrapped.flush()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def main_plain(images: list[str]) -> NoReturn:
    """``qcow2lint check IMAGE...`` without typer: :func:`check` with every
    option at its default, ended as typer's standalone mode and
    :func:`qcow2lint.cli.main` end it."""
    import errno

    try:
        try:
            check(images)
        except KeyboardInterrupt:
            sys.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            sys.stdout = _QuietFlush(sys.stdout)
            sys.stderr = _QuietFlush(sys.stderr)
            sys.exit(1)  # what typer's standalone mode exits with on a broken pipe
    except KeyboardInterrupt:
        echo("qcow2lint: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_ERROR)
    except MemoryError as exc:  # a limit, not a bug: say so, never an empty message
        echo(f"qcow2lint: error: {exception_text(exc)}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # last line of defence: one line, not a traceback
        echo(f"qcow2lint: internal error: {exception_text(exc)} (please report this)", err=True)
        sys.exit(EXIT_ERROR)


class Format(str, enum.Enum):
    """Report formats of ``check``."""

    text = "text"
    json = "json"
    sarif = "sarif"
    sarif_github = "sarif-github"
    github = "github"
    gitlab = "gitlab"
    junit = "junit"


class Level(str, enum.Enum):
    """Severities a user can name."""

    error = "error"
    warning = "warning"
    info = "info"


class Colour(str, enum.Enum):
    """When the text report is coloured."""

    auto = "auto"
    always = "always"
    never = "never"


def use_colour(choice: Colour, stream: Any = None) -> bool:
    """Whether to colour: ``always``/``never`` as said; ``auto`` colours a
    terminal, unless ``NO_COLOR`` is set (not empty), and colours anything
    when ``FORCE_COLOR`` is set (not empty, not ``0``/``false``) and
    ``NO_COLOR`` is not."""
    if choice is not Colour.auto:
        return choice is Colour.always
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR", "")
    if force and force.lower() not in ("0", "false"):
        return True
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def fail(message: str) -> NoReturn:
    """Say what is wrong, one line per problem, and exit 2."""
    # one line per problem: a ConfigError carries every problem of the configuration
    for line in message.splitlines() or [""]:
        echo(f"qcow2lint: error: {line}", err=True)
    raise SystemExit(EXIT_ERROR)


def rule_registry() -> Registry:
    """Every rule, or exit 2 naming the broken one."""
    try:
        return load_registry()
    except RegistryError as exc:
        fail(str(exc))


def items(values: list[str] | None) -> tuple[str, ...]:
    """The rule names of repeated, comma-separated options."""
    return tuple(item.strip() for value in values or () for item in value.split(",") if item.strip())


def command_line(
    select: list[str] | None,
    extend_select: list[str] | None,
    ignore: list[str] | None,
    exclude: list[str] | None,
    docs_url: str | None,
) -> Any:
    """The options that apply on top of the configuration (a :class:`qcow2lint.selection.CommandLine`)."""
    from qcow2lint.selection import CommandLine

    return CommandLine(
        None if select is None else items(select),
        items(extend_select),
        items(ignore),
        tuple(exclude or ()),
        docs_url,
    )


def effective_settings(registry: Registry, config: Path | None, preset: str | None, line: Any) -> Any:
    """The configuration with the command line's options applied, or exit 2."""
    from qcow2lint.selection import apply_command_line

    try:
        return apply_command_line(load_config(registry, config, preset=preset), registry, line)
    except ConfigError as exc:
        fail(str(exc))


def check_target(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before any work."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        fail(f"{option} {path}: is a directory")
    if not parent.is_dir():
        fail(f"{option} {path}: no such directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(f"{option} {path}: permission denied")


def plural(count: int, word: str) -> str:
    """``1 image``, ``2 images`` (``info`` stays)."""
    return f"{count} {word}{'' if count == 1 or word == 'info' else 's'}"


def run_summary(reports: list[Any], suppressed: int | None = None) -> str:
    """The one line that ends a text report: images, findings per severity."""
    counts = {"error": 0, "warning": 0, "info": 0}
    with_findings = unreadable = 0
    for report in reports:
        if report.error is not None:
            unreadable += 1
            continue
        with_findings += bool(report.findings)
        for key, value in report.counts().items():
            counts[key] += value
    parts = ", ".join(plural(n, name) for name, n in counts.items())
    tail = [f"{plural(with_findings, 'image')} with findings"]
    if unreadable:
        tail.append(f"{unreadable} not checked")
    if suppressed:
        tail.append(f"{suppressed} suppressed by the baseline")
    return f"checked {plural(len(reports), 'image')}: {parts} ({', '.join(tail)})\n"


def run_statistics(reports: list[Any]) -> str:
    """Findings per rule over every image of the run."""
    from qcow2lint.text import escape

    per_rule: dict[str, int] = {}
    for report in reports:
        for finding in report.findings:
            key = escape(f"{finding.code} {finding.rule}")
            per_rule[key] = per_rule.get(key, 0) + 1
    lines = [f"findings per rule over {plural(len(reports), 'image')}:"]
    lines += [f"  {count:>7}  {rule}" for rule, count in sorted(per_rule.items())] or ["        0"]
    return "\n".join(lines) + "\n"


def check(
    images: list[str],
    config: Path | None = None,
    preset: str | None = None,
    output_format: Format = Format.text,
    fail_level: Level = Level.error,
    select: list[str] | None = None,
    extend_select: list[str] | None = None,
    ignore: list[str] | None = None,
    exclude: list[str] | None = None,
    quiet: bool = False,
    silent: bool = False,
    colour: Colour = Colour.auto,
    dump: bool = False,
    statistics: bool = False,
    deep: bool = False,
    jobs: int = 1,
    exit_zero: bool = False,
    output_file: Path | None = None,
    baseline: Path | None = None,
    generate_baseline: Path | None = None,
    docs_url: str | None = None,
    show_all: bool = False,
) -> NoReturn:
    """Check ``images`` (the options as ``qcow2lint check --help`` says) and
    exit with the run's code (SystemExit, as typer's Exit ends a command)."""
    from qcow2lint.findings import ImageReport
    from qcow2lint.inputs import Unmatched, expand
    from qcow2lint.report.text import render_text
    from qcow2lint.runner import Job, run

    registry = rule_registry()
    line = command_line(select, extend_select, ignore, exclude, docs_url)
    settings = effective_settings(registry, config, preset, line)
    for target, option in ((output_file, "--output-file"), (generate_baseline, "--generate-baseline")):
        if target is not None:
            check_target(target, option)
    accept = _baseline_filter(baseline) if baseline else None
    threshold = Severity.parse(fail_level.value)
    generating = generate_baseline is not None
    # With --output-file the chosen format goes to the file and the terminal
    # gets the text report.
    terminal = Format.text if output_file is not None else output_format
    machine = terminal is not Format.text
    show_text = terminal is Format.text and not silent and not generating
    coloured = show_text and use_colour(colour)
    entries = expand(images, settings.excluded if settings.exclude else None)
    paths = [entry for entry in entries if not isinstance(entry, Unmatched)]
    from qcow2lint import progress

    waiting = progress.Progress(len(paths)).waiting if paths and progress.wanted(machine) and not silent else None
    job = Job(
        None if config is None else str(config),
        statistics or output_format is not Format.text,
        deep,
        dump,
        preset,
        line or None,
    )
    outcomes = run(paths, job, jobs, registry=registry, config=settings, waiting=waiting)

    reports, found, extra, exit_code = [], [], {}, EXIT_OK
    for entry in entries:
        if isinstance(entry, Unmatched):
            report, dump_text, dump_error = ImageReport(entry.argument, error=str(entry)), None, None
        else:
            outcome = next(outcomes)
            report, dump_text, dump_error = outcome.report, outcome.dump_text, outcome.dump_error
        found.append(report)
        report = accept(report) if accept is not None else report
        path = report.path
        if dump_text is not None and not silent:
            if terminal is Format.text:
                echo(dump_text, nl=False)
            else:
                extra[path] = {"dump": dump_text}
        if dump_error:
            echo(f"qcow2lint: dump: {path}: {dump_error}", err=True)
        reports.append(report)
        if report.error is not None:
            echo(f"qcow2lint: error: {report.error}", err=True)
            exit_code = EXIT_ERROR
        elif exit_code == EXIT_OK and any(f.severity >= threshold for f in report.findings):
            exit_code = EXIT_FINDINGS
        if show_text and report.error is None:
            # --quiet: the finding lines only; the run's summary line ends the output
            text = render_text(report, statistics, coloured, show_all, summary=not quiet)
            echo(text, nl=False, color=coloured)  # click strips colour off a terminal unless told
    suppressed = accept.suppressed if accept is not None else None
    if show_text and (quiet or len(reports) > 1):
        echo(run_summary(reports, suppressed), nl=False)
    if show_text and statistics and len(reports) > 1:
        echo(run_statistics(reports), nl=False)
    if accept is not None and not silent:
        if not quiet:
            echo(f"qcow2lint: baseline {baseline}: suppressed {plural(accept.suppressed, 'finding')}", err=True)
        stale = accept.stale()
        if stale:
            echo(
                f"qcow2lint: warning: baseline {baseline}: {stale} of its findings in the checked images no longer "
                "occur (fixed, or moved); regenerate it with --generate-baseline",
                err=True,
            )
    if not generating and (output_format is not Format.text or output_file is not None):
        rendered = _render(output_format, reports, extra, registry, settings, threshold, show_all)
        if output_file is None:
            if not silent:
                echo(rendered, nl=False)
        else:
            _write(output_file, rendered)
    elif generating and output_file is not None:
        _write(output_file, _render(output_format, reports, extra, registry, settings, threshold))
    if generate_baseline is not None:
        from qcow2lint.baseline import generate_baseline as baseline_text

        text = baseline_text(found, root=generate_baseline.absolute().parent)
        _write(generate_baseline, text)
        if not silent:
            import json

            count = len(json.loads(text)["findings"])
            echo(f"wrote {plural(count, 'entry').replace('entrys', 'entries')} to {generate_baseline}")
        raise SystemExit(EXIT_ERROR if exit_code == EXIT_ERROR else EXIT_OK)
    if exit_zero and exit_code == EXIT_FINDINGS:
        exit_code = EXIT_OK
    raise SystemExit(exit_code)


def _baseline_filter(path: Path) -> Any:
    """The ``--baseline`` filter (the baseline module, and json, only when asked for)."""
    from qcow2lint.baseline import BaselineError, BaselineFilter, read_baseline

    try:
        return BaselineFilter(read_baseline(path), root=path.absolute().parent, source=str(path))
    except BaselineError as exc:
        fail(str(exc))


def _render(
    output_format: Format,
    reports: list[Any],
    extra: dict[str, Any],
    registry: Registry,
    settings: Any,
    threshold: Severity,
    show_all: bool = False,
) -> str:
    """The whole report in ``output_format`` (every format from one engine run)."""
    from qcow2lint.report import github, gitlab, junit, sarif
    from qcow2lint.report.jsonreport import render_json
    from qcow2lint.report.text import render_text

    if output_format is Format.github:
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as handle:
                handle.write(github.github_step_summary(reports))
        return github.render_github(reports)
    from qcow2lint.links import docs_url

    docs = docs_url(settings.docs_url)
    renderers = {
        Format.text: lambda: "".join(render_text(r, show_all=show_all) for r in reports if r.error is None),
        Format.json: lambda: render_json(reports, extra),
        Format.sarif: lambda: sarif.render_sarif(reports, registry, docs_url=docs),
        Format.sarif_github: lambda: sarif.render_sarif(reports, registry, github=True, docs_url=docs),
        Format.gitlab: lambda: gitlab.render_gitlab(reports),
        Format.junit: lambda: junit.render_junit(
            reports, registry, enabled=set(settings.enabled()), fail_level=threshold
        ),
    }
    return renderers[output_format]()


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"{path}: cannot write: {exc.strerror or exc}")
