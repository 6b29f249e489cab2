"""The ``qcow2lint`` command: parses options, calls the library, renders,
and maps outcomes to exit codes.

Exit codes: 0 no finding at or above the fail level, 1 findings at or above
it, 2 usage error, bad configuration, broken plugin, or an input that cannot
be read at all.
"""

from __future__ import annotations

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from qcow2lint import __version__
from qcow2lint.config import ConfigError, load_config
from qcow2lint.filekind import ImageError
from qcow2lint.findings import Severity
from qcow2lint.registry import Registry, RegistryError, load_registry
from qcow2lint.text import exception_text

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Lint QEMU qcow2 disk images: spec violations, QEMU refusals, and the standard header dump.",
)


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


def _fail(message: str) -> NoReturn:
    typer.echo(f"qcow2lint: error: {message}", err=True)
    raise typer.Exit(EXIT_ERROR)


def _registry() -> Registry:
    try:
        return load_registry()
    except RegistryError as exc:
        _fail(str(exc))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"qcow2lint {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Lint QEMU qcow2 disk images."""


@app.command()
def check(
    images: Annotated[
        list[str],
        typer.Argument(
            help="Image files, directories (searched recursively for *.qcow2 and files with the qcow2 magic) "
            "and glob patterns (** for any depth).",
            show_default=False,
            metavar="IMAGE...",
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration file (default: discovered upwards).", readable=False),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="Start from a built-in preset (default, strict, untrusted); no configuration is "
            "discovered, a --config file applies on top.", show_default=False,
        ),
    ] = None,
    output_format: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.text,
    fail_level: Annotated[
        Level, typer.Option("--fail-level", help="Exit 1 when a finding has this severity or worse.")
    ] = Level.error,
    dump: Annotated[bool, typer.Option("--dump", help="Print the standard header dump before the findings.")] = False,
    statistics: Annotated[
        bool, typer.Option("--statistics", help="Print findings per rule and qemu-img check's figures.")
    ] = False,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also decompress every compressed cluster (slow on large images).")
    ] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs", "-j", min=0, help="Check images in N parallel processes (0: one per CPU); same output order."
        ),
    ] = 1,
    exit_zero: Annotated[
        bool,
        typer.Option("--exit-zero", help="Exit 0 even when findings reach the fail level (2 still means unreadable)."),
    ] = False,
    output_file: Annotated[
        Path | None,
        typer.Option(
            "--output-file", "-o", help="Write the --format report to FILE; the text report still goes to the terminal."
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option("--baseline", help="Report only findings the baseline FILE does not hold.", readable=False),
    ] = None,
    generate_baseline: Annotated[
        Path | None,
        typer.Option("--generate-baseline", help="Write every current finding's fingerprint to FILE (a baseline)."),
    ] = None,
) -> None:
    """Check images and report findings with rule names, offsets and structure paths."""
    from qcow2lint.baseline import BaselineError, BaselineFilter, read_baseline
    from qcow2lint.baseline import generate_baseline as baseline_text
    from qcow2lint.findings import ImageReport
    from qcow2lint.inputs import Unmatched, expand
    from qcow2lint.report.text import render_text
    from qcow2lint.runner import Job, run

    registry = _registry()
    try:
        settings = load_config(registry, config, preset=preset)
        accept = BaselineFilter(read_baseline(baseline), source=str(baseline)) if baseline else None
    except (ConfigError, BaselineError) as exc:
        _fail(str(exc))
    threshold = Severity.parse(fail_level.value)
    # With --output-file the chosen format goes to the file and the terminal
    # gets the text report.
    terminal = Format.text if output_file is not None else output_format
    machine = terminal is not Format.text
    colour = not machine and sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    entries = expand(images)
    paths = [entry for entry in entries if not isinstance(entry, Unmatched)]
    from qcow2lint import progress

    waiting = progress.Progress(len(paths)).waiting if paths and progress.wanted(machine) else None
    job = Job(None if config is None else str(config), statistics or output_format is not Format.text, deep, dump, preset)
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
        if dump_text is not None:
            if terminal is Format.text:
                typer.echo(dump_text, nl=False)
            else:
                extra[path] = {"dump": dump_text}
        if dump_error:
            typer.echo(f"qcow2lint: dump: {path}: {dump_error}", err=True)
        reports.append(report)
        if report.error is not None:
            typer.echo(f"qcow2lint: error: {report.error}", err=True)
            exit_code = EXIT_ERROR
        elif exit_code == EXIT_OK and any(f.severity >= threshold for f in report.findings):
            exit_code = EXIT_FINDINGS
        if terminal is Format.text and report.error is None:
            typer.echo(render_text(report, statistics, colour), nl=False)
    if output_format is not Format.text or output_file is not None:
        rendered = _render(output_format, reports, extra, registry, settings, threshold)
        if output_file is None:
            typer.echo(rendered, nl=False)
        else:
            _write(output_file, rendered)
    if generate_baseline is not None:
        _write(generate_baseline, baseline_text(found))
    if exit_zero and exit_code == EXIT_FINDINGS:
        exit_code = EXIT_OK
    raise typer.Exit(exit_code)


def _render(
    output_format: Format, reports: list[Any], extra: dict[str, Any], registry: Registry, settings: Any,
    threshold: Severity,
) -> str:  # fmt: skip
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
    renderers = {
        Format.text: lambda: "".join(render_text(r) for r in reports if r.error is None),
        Format.json: lambda: render_json(reports, extra),
        Format.sarif: lambda: sarif.render_sarif(reports, registry),
        Format.sarif_github: lambda: sarif.render_sarif(reports, registry, github=True),
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
        _fail(f"{path}: cannot write: {exc.strerror or exc}")


@app.command("dump")
def dump_command(
    image: Annotated[Path, typer.Argument(help="Image file to dump.", show_default=False, readable=False)],
    as_json: Annotated[bool, typer.Option("--json", "-j", help="JSON, like qcow2.py -j.")] = False,
) -> None:
    """Print the standard dump, byte-identical to QEMU's qcow2.py dump-header."""
    from qcow2lint.inputs import MISSING, Unmatched
    from qcow2lint.reader import ImageError
    from qcow2lint.report.dump import build_dump

    if not os.path.lexists(image):  # worded as ``check`` words it
        _fail(str(Unmatched(str(image), MISSING)))
    try:
        result = build_dump(str(image), as_json)
    except ImageError as exc:
        _fail(str(exc))
    sys.stdout.write(result.text)
    sys.stdout.flush()
    if result.error:
        _fail(f"{image}: {result.error}")


@app.command("config")
def config_command(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration file (default: discovered upwards).", readable=False),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            "--preset", help="Start from a built-in preset (default, strict, untrusted); no configuration is "
            "discovered, a --config file applies on top.", show_default=False,
        ),
    ] = None,
) -> None:
    """Print the effective configuration and where each value came from."""
    from qcow2lint.config import render_config

    registry = _registry()
    try:
        settings = load_config(registry, config, preset=preset)
    except ConfigError as exc:
        _fail(str(exc))
    typer.echo(render_config(settings, registry), nl=False)


@app.command("rules")
def rules_command(
    reference_config: Annotated[
        bool, typer.Option("--reference-config", help="Print the reference configuration (config.yaml) instead.")
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the rules reference (docs/rules.md) instead.")
    ] = False,
) -> None:
    """List every rule: code, name, default severity, summary."""
    registry = _registry()
    if reference_config:
        from qcow2lint.config import reference_config as render

        typer.echo(render(registry), nl=False)
        return
    if markdown:
        from qcow2lint.report.rulesdoc import rules_markdown

        typer.echo(rules_markdown(registry), nl=False)
        return
    width = max((len(rule.name) for rule in registry), default=4)
    for rule in registry:
        typer.echo(f"{rule.code}  {rule.name:<{width}}  {str(rule.severity):<7}  {rule.summary}")


@app.command("rule")
def rule_command(name: Annotated[str, typer.Argument(help="Rule name or code.", show_default=False)]) -> None:
    """Print a rule's documentation."""
    import difflib

    registry = _registry()
    rule = registry.get(name)
    if rule is None:
        close = difflib.get_close_matches(name, [r.name for r in registry], n=1)
        _fail(f"unknown rule {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    typer.echo(f"{rule.name} ({rule.code}, default severity {rule.severity})\n")
    typer.echo(rule.doc.strip())
    if rule.options:
        typer.echo("\nOptions:")
        for option, default in rule.options.items():
            typer.echo(f"  {option}: {default!r}")


def main() -> None:
    """Console entry point: never a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("qcow2lint: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_ERROR)
    except MemoryError as exc:  # a limit, not a bug: say so, never an empty message
        typer.echo(f"qcow2lint: error: {exception_text(exc)}", err=True)
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # last line of defence: one line, not a traceback
        typer.echo(f"qcow2lint: internal error: {exception_text(exc)} (please report this)", err=True)
        sys.exit(EXIT_ERROR)
