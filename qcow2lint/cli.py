"""The ``qcow2lint`` command: parses options, calls the library, renders,
and maps outcomes to exit codes.

Exit codes: 0 no finding at or above the fail level, 1 findings at or above
it (root causes and their follow-on findings alike), 2 usage error, bad configuration, broken plugin, or an input that cannot
be read at all.
"""

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from qcow2lint import __version__, checkcommand
from qcow2lint.checkcommand import EXIT_ERROR, Colour, Format, Level
from qcow2lint.checkcommand import command_line as _command_line
from qcow2lint.checkcommand import effective_settings as _settings
from qcow2lint.checkcommand import fail as _fail
from qcow2lint.checkcommand import rule_registry as _registry
from qcow2lint.text import exception_text

# Every command writes through typer's echo (click's), as it always did.
checkcommand.use_echo(typer.echo)


def _keep_argument_help() -> None:
    """Show the help text of arguments in ``--help``.

    typer < 0.25 (pinned, see pyproject.toml) stores an argument's ``help``
    before calling click's ``Parameter.__init__``, which since click 8.2
    resets it to None: ``check --help`` then printed ``IMAGE...  [required]``
    without the text.  Store it again afterwards.
    """
    import typer.core

    original = typer.core.TyperArgument.__init__
    if getattr(original, "_keeps_help", False):
        return

    def __init__(self: Any, *args: Any, help: str | None = None, **kwargs: Any) -> None:  # noqa: A002
        original(self, *args, help=help, **kwargs)
        self.help = help

    __init__._keeps_help = True  # type: ignore[attr-defined]
    typer.core.TyperArgument.__init__ = __init__  # type: ignore[method-assign]


_keep_argument_help()


class _Command(typer.core.TyperCommand):
    """Every command: typer's own "Arguments" section only (click 8.5+
    would print the arguments a second time, as "Positional arguments")."""

    def format_arguments(self, ctx: Any, formatter: Any) -> None:
        """Nothing: typer's format_options lists the arguments."""


app = typer.Typer(
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Lint QEMU qcow2 disk images: spec violations, QEMU refusals, and the standard header dump. "
    "Shell completion: qcow2lint --install-completion (or --show-completion SHELL to print the script).",
)


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


# Options shared by ``check`` and ``config``.
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Configuration file (default: discovered upwards).", readable=False),
]
PresetOption = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Start from a built-in preset (default, strict, pedantic, untrusted); no configuration is "
        "discovered, a --config file applies on top.",
        show_default=False,
    ),
]
SelectOption = Annotated[
    list[str] | None,
    typer.Option(
        "--select",
        metavar="RULES",
        show_default=False,
        help="Enable only these rules (names, codes, code prefixes like Q07, or ALL; comma-separated or "
        "repeated), on top of the configuration.",
    ),
]
ExtendSelectOption = Annotated[
    list[str] | None,
    typer.Option(
        "--extend-select",
        metavar="RULES",
        show_default=False,
        help="Enable these rules too (names, codes, code prefixes), on top of the configuration and --select.",
    ),
]
IgnoreOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ignore",
        metavar="RULES",
        show_default=False,
        help="Disable these rules (names, codes, code prefixes), after --select and --extend-select.",
    ),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        metavar="GLOB",
        show_default=False,
        help="Skip paths matching GLOB when a directory or glob is searched (repeatable; added to the "
        "configuration's exclude).",
    ),
]
DocsUrlOption = Annotated[
    str | None,
    typer.Option(
        "--docs-url",
        metavar="URL",
        show_default=False,
        help="Base URL of the rule pages (NAME.md) for SARIF's helpUri (default: the configuration's docs-url, "
        "else $QCOW2LINT_DOCS_URL, else the file:// URI of docs/rules/ in a source checkout).",
    ),
]


@app.command(
    cls=_Command,
    epilog="\b\nExit codes:\n  0  no finding at or above --fail-level (or --exit-zero, or --generate-baseline)\n"
    "  1  findings at or above --fail-level\n"
    "  2  usage error, bad configuration or baseline, broken rule plugin, an output file that cannot be\n"
    "     written, or an input that cannot be read at all (one line on stderr each)",
)
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
    config: ConfigOption = None,
    preset: PresetOption = None,
    output_format: Annotated[Format, typer.Option("--format", "-f", help="Report format.")] = Format.text,
    fail_level: Annotated[
        Level, typer.Option("--fail-level", help="Exit 1 when a finding has this severity or worse.")
    ] = Level.error,
    select: SelectOption = None,
    extend_select: ExtendSelectOption = None,
    ignore: IgnoreOption = None,
    exclude: ExcludeOption = None,
    quiet: Annotated[
        bool,
        typer.Option("--quiet", "-q", help="Text: print only the findings and the final summary line."),
    ] = False,
    silent: Annotated[
        bool,
        typer.Option(
            "--silent",
            "-s",
            help="Print nothing on stdout (files named by -o and --generate-baseline are "
            "still written; errors still get their line on stderr): the exit code says it all.",
        ),
    ] = False,
    colour: Annotated[
        Colour,
        typer.Option(
            "--color",
            help="Colour the text report: auto (a terminal, unless NO_COLOR is set; FORCE_COLOR "
            "forces it), always or never.",
        ),
    ] = Colour.auto,
    dump: Annotated[bool, typer.Option("--dump", help="Print the standard header dump before the findings.")] = False,
    statistics: Annotated[
        bool,
        typer.Option(
            "--statistics",
            help="Print findings per rule and qemu-img check's figures per image, and findings per rule over the run.",
        ),
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
        typer.Option(
            "--baseline",
            help="Report only findings the baseline FILE does not hold; say how many it "
            "suppressed and warn about entries that match nothing any more.",
            readable=False,
        ),
    ] = None,
    generate_baseline: Annotated[
        Path | None,
        typer.Option(
            "--generate-baseline",
            help="Write every current finding's fingerprint to FILE (image paths "
            "relative to FILE's directory), print how many entries, exit 0; no report.",
        ),
    ] = None,
    docs_url: DocsUrlOption = None,
    show_all: Annotated[
        bool,
        typer.Option(
            "--show-all",
            help="List the follow-on findings of each root cause too (the text report lists root "
            "causes with a count of their follow-on findings).",
        ),
    ] = False,
) -> None:
    """Check images and report findings with rule names, offsets and structure paths."""
    checkcommand.check(
        images,
        config=config,
        preset=preset,
        output_format=output_format,
        fail_level=fail_level,
        select=select,
        extend_select=extend_select,
        ignore=ignore,
        exclude=exclude,
        quiet=quiet,
        silent=silent,
        colour=colour,
        dump=dump,
        statistics=statistics,
        deep=deep,
        jobs=jobs,
        exit_zero=exit_zero,
        output_file=output_file,
        baseline=baseline,
        generate_baseline=generate_baseline,
        docs_url=docs_url,
        show_all=show_all,
    )


@app.command("dump", cls=_Command)
def dump_command(
    image: Annotated[Path, typer.Argument(help="Image file to dump.", show_default=False, readable=False)],
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON, like qcow2.py -j (-j means --jobs everywhere in qcow2lint).")
    ] = False,
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


@app.command("config", cls=_Command)
def config_command(
    config: ConfigOption = None,
    preset: PresetOption = None,
    select: SelectOption = None,
    extend_select: ExtendSelectOption = None,
    ignore: IgnoreOption = None,
    exclude: ExcludeOption = None,
    docs_url: DocsUrlOption = None,
    schema: Annotated[
        bool,
        typer.Option(
            "--schema",
            help="Print the configuration file's JSON Schema (every rule and its options) instead.",
        ),
    ] = False,
) -> None:
    """Print the effective configuration and where each value came from."""
    from qcow2lint.configrender import render_config

    registry = _registry()
    if schema:
        from qcow2lint.configschema import render_schema

        typer.echo(render_schema(registry), nl=False)
        return
    settings = _settings(registry, config, preset, _command_line(select, extend_select, ignore, exclude, docs_url))
    typer.echo(render_config(settings, registry), nl=False)


@app.command("rules", cls=_Command)
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
        from qcow2lint.configrender import reference_config as render

        typer.echo(render(registry), nl=False)
        return
    if markdown:
        from qcow2lint.report.rulesdoc import rules_markdown

        typer.echo(rules_markdown(registry), nl=False)
        return
    width = max((len(rule.name) for rule in registry), default=4)
    for rule in registry:
        off = "" if rule.default_enabled else " (off by default)"
        typer.echo(f"{rule.code}  {rule.name:<{width}}  {str(rule.severity):<7}  {rule.summary}{off}")


@app.command("rule", cls=_Command)
def rule_command(name: Annotated[str, typer.Argument(help="Rule name or code.", show_default=False)]) -> None:
    """Print a rule's documentation."""
    import difflib

    registry = _registry()
    rule = registry.get(name)
    if rule is None:
        close = difflib.get_close_matches(name, [r.name for r in registry], n=1)
        _fail(f"unknown rule {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    off = "" if rule.default_enabled else "; off by default"
    typer.echo(f"{rule.name} ({rule.code}, default severity {rule.severity}{off})\n")
    typer.echo(rule.doc.strip())
    if rule.options:
        from qcow2lint.registry import option_schema

        typer.echo("\nOptions:")
        for option, schema in option_schema(rule).items():
            allowed = ""
            if "enum" in schema:
                allowed = "; one of " + ", ".join(map(repr, schema["enum"]))
            elif "minimum" in schema or "maximum" in schema:
                low, high = schema.get("minimum", ""), schema.get("maximum", "")
                allowed = f"; {low}..{high}"
            typer.echo(f"  {option}: {schema['default']!r} ({schema['type']}{allowed})")
    if rule.repro:
        typer.echo("\nReproduction:")
        for command in [*rule.repro.rstrip("\n").splitlines(), f"qcow2lint check --select {rule.name} repro.qcow2"]:
            typer.echo(f"  {command}")
    typer.echo(f"\nPage: docs/rules/{rule.name}.md (in the qcow2lint repository)")


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
