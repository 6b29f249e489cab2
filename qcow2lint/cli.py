"""The ``qcow2lint`` command: parses options, calls the library, renders,
and maps outcomes to exit codes.

Exit codes: 0 no finding at or above the fail level, 1 findings at or above
it, 2 usage error, bad configuration, broken plugin, or an input that cannot
be read at all.
"""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from qcow2lint import __version__
from qcow2lint.config import ConfigError, load_config
from qcow2lint.findings import Severity
from qcow2lint.reader import ImageError
from qcow2lint.registry import Registry, RegistryError, load_registry

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
        list[Path], typer.Argument(help="Image files to check.", show_default=False, readable=False)
    ],
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Configuration file (default: discovered upwards).", readable=False),
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
) -> None:
    """Check images and report findings with rule names, offsets and structure paths."""
    from qcow2lint.engine import lint_path
    from qcow2lint.report.dump import build_dump
    from qcow2lint.report.jsonreport import render_json
    from qcow2lint.report.text import render_text

    registry = _registry()
    try:
        settings = load_config(registry, config)
    except ConfigError as exc:
        _fail(str(exc))
    threshold = Severity.parse(fail_level.value)
    reports, extra, exit_code = [], {}, EXIT_OK
    for image in images:
        path = str(image)
        if dump:
            try:
                result = build_dump(path)
            except ImageError:
                result = None  # the check below reports why
            if result is not None:
                if output_format is Format.text:
                    typer.echo(result.text, nl=False)
                else:
                    extra[path] = {"dump": result.text}
                if result.error:
                    typer.echo(f"qcow2lint: dump: {path}: {result.error}", err=True)
        report = lint_path(path, settings, registry, statistics or output_format is Format.json, deep)
        reports.append(report)
        if report.error is not None:
            typer.echo(f"qcow2lint: error: {report.error}", err=True)
            exit_code = EXIT_ERROR
        elif exit_code == EXIT_OK and any(f.severity >= threshold for f in report.findings):
            exit_code = EXIT_FINDINGS
        if output_format is Format.text and report.error is None:
            typer.echo(render_text(report, statistics), nl=False)
    if output_format is Format.json:
        typer.echo(render_json(reports, extra), nl=False)
    raise typer.Exit(exit_code)


@app.command("dump")
def dump_command(
    image: Annotated[Path, typer.Argument(help="Image file to dump.", show_default=False, readable=False)],
    as_json: Annotated[bool, typer.Option("--json", "-j", help="JSON, like qcow2.py -j.")] = False,
) -> None:
    """Print the standard dump, byte-identical to QEMU's qcow2.py dump-header."""
    from qcow2lint.report.dump import build_dump

    try:
        result = build_dump(str(image), as_json)
    except ImageError as exc:
        _fail(str(exc))
    sys.stdout.write(result.text)
    sys.stdout.flush()
    if result.error:
        _fail(f"{image}: {result.error}")


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
    except Exception as exc:  # last line of defence: one line, not a traceback
        typer.echo(f"qcow2lint: internal error: {type(exc).__name__}: {exc} (please report this)", err=True)
        sys.exit(EXIT_ERROR)
