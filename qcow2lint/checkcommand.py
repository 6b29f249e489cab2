"""What ``qcow2lint check`` does once its options are parsed (by
:func:`qcow2lint.options.parse`, from the table there), and what every
command shares: how it writes, fails and loads the rules and the
configuration.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from qcow2lint.config import ConfigError, load_config
from qcow2lint.findings import Severity
from qcow2lint.options import Colour, Format, Level, Values
from qcow2lint.registry import Registry, RegistryError, load_registry

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

__all__ = ["check", "fail", "out", "say"]


def out(text: str) -> None:
    """Write ``text`` to stdout as it comes (each part flushed, so that it
    keeps its place among the lines on stderr)."""
    sys.stdout.write(text)
    sys.stdout.flush()


def say(line: str) -> None:
    """Write one line to stderr."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


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
        say(f"qcow2lint: error: {line}")
    raise SystemExit(EXIT_ERROR)


def rule_registry() -> Registry:
    """Every rule, or exit 2 naming the broken one."""
    try:
        return load_registry()
    except RegistryError as exc:
        fail(str(exc))


def items(values: list[str] | None) -> tuple[str, ...]:
    """The rule names of repeated, comma-separated options (an empty one is
    kept: selecting it is an error, not every rule off in silence)."""
    return tuple(item.strip() for value in values or () for item in value.split(","))


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
    from qcow2lint.outputs import output_problem

    problem = output_problem(path)
    if problem is not None:
        fail(f"{option} {path}: {problem}")


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


def check(values: Values) -> NoReturn:
    """Check ``values.images`` (the options as ``qcow2lint check --help``
    says) and exit with the run's code (SystemExit)."""
    images: list[str] = values.images
    config: Path | None = values.config
    preset: str | None = values.preset
    output_format: Format = values.output_format
    fail_level: Level = values.fail_level
    quiet: bool = values.quiet
    silent: bool = values.silent
    statistics: bool = values.statistics
    dump: bool = values.dump
    show_all: bool = values.show_all
    output_file: Path | None = values.output_file
    baseline: Path | None = values.baseline
    generate_baseline: Path | None = values.generate_baseline
    from qcow2lint.findings import ImageReport
    from qcow2lint.inputs import Unmatched, expand
    from qcow2lint.report.text import render_text
    from qcow2lint.runner import Job, run

    registry = rule_registry()
    line = command_line(values.select, values.extend_select, values.ignore, values.exclude, values.docs_url)
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
    coloured = show_text and use_colour(values.colour)
    from qcow2lint.source import is_url

    remote = None
    if any(map(is_url, images)):
        from qcow2lint.cli import remote_options

        remote = remote_options(values)
    entries = expand(images, settings.excluded if settings.exclude else None, remote=remote)
    paths = [entry for entry in entries if not isinstance(entry, Unmatched)]
    from qcow2lint import progress

    waiting = (
        progress.Progress(len(paths), colour=use_colour(values.colour, sys.stderr)).waiting
        if paths and progress.wanted(machine) and not silent
        else None
    )
    job = Job(
        None if config is None else str(config),
        statistics or output_format is not Format.text,
        values.deep,
        dump,
        preset,
        line or None,
        remote,
    )
    if values.scheduler is None:
        outcomes = run(paths, job, values.jobs, registry=registry, config=settings, waiting=waiting)
    else:
        outcomes = _fleet(paths, job, values.scheduler, values.jobs, waiting)
    # JSON Lines: each image's line is written as it comes and nothing is
    # kept for a report at the end, so the run's memory does not grow with
    # the number of images.
    streaming = output_format is Format.jsonl and not (generating and output_file is None)
    lines = _JsonLines(output_file, silent) if streaming else None
    keep = lines is None or show_text

    reports, found, extra, exit_code = [], [], {}, EXIT_OK
    for entry in entries:
        if isinstance(entry, Unmatched):
            report, dump_text, dump_error = ImageReport(entry.argument, error=str(entry)), None, None
        else:
            outcome = next(outcomes)
            report, dump_text, dump_error = outcome.report, outcome.dump_text, outcome.dump_error
        if generating:
            found.append(report)
        report = accept(report) if accept is not None else report
        path = report.path
        if dump_text is not None and not silent:
            if terminal is Format.text:
                out(dump_text)
            else:
                extra[path] = {"dump": dump_text}
        if dump_error:
            say(f"qcow2lint: dump: {path}: {dump_error}")
        if lines is not None:
            lines.image(report, extra.pop(path, None))
        if keep:
            reports.append(report)
        if report.error is not None:
            say(f"qcow2lint: error: {report.error}")
            exit_code = EXIT_ERROR
        elif exit_code == EXIT_OK and any(f.severity >= threshold for f in report.findings):
            exit_code = EXIT_FINDINGS
        if show_text and report.error is None:
            # --quiet: the finding lines only; the run's summary line ends the output
            text = render_text(report, statistics, coloured, show_all, summary=not quiet)
            out(text)
    suppressed = accept.suppressed if accept is not None else None
    if show_text and (quiet or len(reports) > 1):
        out(run_summary(reports, suppressed))
    if show_text and statistics and len(reports) > 1:
        out(run_statistics(reports))
    if accept is not None and not silent:
        if not quiet:
            say(f"qcow2lint: baseline {baseline}: suppressed {plural(accept.suppressed, 'finding')}")
        stale = accept.stale()
        if stale:
            say(
                f"qcow2lint: warning: baseline {baseline}: {stale} of its findings in the checked images no longer "
                "occur (fixed, or moved); regenerate it with --generate-baseline"
            )
    if lines is not None:
        lines.close()
    elif not generating and (output_format is not Format.text or output_file is not None):
        rendered = _render(output_format, reports, extra, registry, settings, threshold, show_all)
        if output_file is None:
            if not silent:
                out(rendered)
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
            out(f"wrote {plural(count, 'entry').replace('entrys', 'entries')} to {generate_baseline}\n")
        raise SystemExit(EXIT_ERROR if exit_code == EXIT_ERROR else EXIT_OK)
    if values.exit_zero and exit_code == EXIT_FINDINGS:
        exit_code = EXIT_OK
    raise SystemExit(exit_code)


def _fleet(paths: list[str], job: Any, scheduler: str, jobs: int, waiting: Any) -> Any:
    """The outcomes of a run on a Dask cluster (``--scheduler``), or exit 2."""
    from qcow2lint.fleet import FleetError, run

    try:
        return run(paths, job, scheduler, jobs, waiting=waiting)
    except FleetError as exc:
        fail(str(exc))


class _JsonLines:
    """The JSON Lines report: each image's line written (and flushed) as it
    comes, to stdout or the ``--output-file``; the totals line at the end."""

    def __init__(self, output_file: Path | None, silent: bool) -> None:
        from qcow2lint.report.jsonreport import Totals

        self.output_file, self.silent, self.totals = output_file, silent, Totals()
        self.handle = None
        if output_file is not None:
            try:
                self.handle = output_file.open("w", encoding="utf-8")
            except OSError as exc:
                fail(f"{output_file}: cannot write: {exc.strerror or exc}")

    def _write(self, line: str) -> None:
        if self.handle is None:
            if not self.silent:
                out(line)
            return
        try:
            self.handle.write(line)
            self.handle.flush()
        except OSError as exc:
            fail(f"{self.output_file}: cannot write: {exc.strerror or exc}")

    def image(self, report: Any, extra: dict[str, Any] | None) -> None:
        """One image's line (``extra``: what it carries besides the report, its dump)."""
        from qcow2lint.report.jsonreport import jsonl_image

        self.totals.add(report)
        self._write(jsonl_image(report, extra))

    def close(self) -> None:
        """The totals line; the file is closed."""
        from qcow2lint.report.jsonreport import jsonl_summary

        self._write(jsonl_summary(self.totals))
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError as exc:
                fail(f"{self.output_file}: cannot write: {exc.strerror or exc}")


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
