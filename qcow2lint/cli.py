"""The ``qcow2lint`` command: parses options, calls the library, renders,
and maps outcomes to exit codes.

Exit codes: 0 no finding at or above the fail level, 1 findings at or above
it (root causes and their follow-on findings alike), 2 usage error, bad configuration, broken plugin, or an input that cannot
be read at all.
"""

import enum
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import typer.core

from qcow2lint import __version__
from qcow2lint.config import ConfigError, load_config
from qcow2lint.findings import Severity
from qcow2lint.registry import Registry, RegistryError, load_registry
from qcow2lint.text import exception_text

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


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


def _coerce_without_pydantic() -> None:
    """Convert plainly valid option values without pydantic.

    typer >= 0.29 converts every value that is not a bool flag through a
    pydantic ``TypeAdapter``, built on first use: importing pydantic costs
    20-40 ms, more than the rest of a small image's check.  This CLI only
    has str, int, Path, enum and list-of-str parameters.  A value that is
    plainly valid for its type (a str, digits within the range, one of the
    enum's values, any path) is converted here, to what pydantic returns
    for it; anything else (a bad value and its error message, a type not
    listed here) goes through typer's own conversion, unchanged.
    """
    import dataclasses
    import pathlib
    import typing

    import typer.core

    try:
        from typer import _coercion, _param_types
    except ImportError:  # typer < 0.29: click converts, without pydantic
        return
    parameter_class: Any = getattr(typer.core, "_TyperParameter", None)
    original = getattr(parameter_class, "get_runtime_param", None)
    if original is None or getattr(original, "_plain_first", False):
        return

    def plain(descriptor: Any, value: Any, ctx: Any) -> Any:
        """``value`` converted, or raise ValueError for typer to judge it."""
        annotation, info = descriptor.annotation, descriptor.parameter_info
        if info.parser is not None or descriptor.file_annotation is not None:
            raise ValueError
        if _param_types.lenient_issubclass(annotation, enum.Enum):
            return _param_types.coerce_cli_choice(
                value, choices=list(annotation), case_sensitive=info.case_sensitive, ctx=ctx
            )
        if annotation is int and not info.clamp:
            number = value if type(value) is int else int(value) if plain_digits(value) else None
            if (
                number is None
                or not (info.min is None or number >= info.min)
                or not (info.max is None or number <= info.max)
            ):
                raise ValueError
            return number
        if annotation is str and isinstance(value, str):
            return value
        if _param_types.lenient_issubclass(annotation, pathlib.Path) and isinstance(value, str | pathlib.Path):
            path_type = info.path_type or annotation
            return _param_types.coerce_cli_path(path_type(value), info, path_type=path_type, ctx=ctx)
        if descriptor.is_list and typing.get_args(annotation) == (str,) and isinstance(value, list | tuple):
            if all(isinstance(item, str) for item in value):
                return list(value)
        raise ValueError

    def plain_digits(value: Any) -> bool:
        return isinstance(value, str) and value.isascii() and value.isdigit()

    @dataclasses.dataclass(frozen=True)
    class PlainFirst(_coercion.RuntimeParam):
        """Tries :func:`plain`, else typer's own (pydantic) conversion."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return plain(self.descriptor, value, ctx)
            except Exception:  # noqa: BLE001 -- typer's conversion decides, with its own message
                return _coercion.build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            descriptor = self.type_descriptor
            self._runtime_param = PlainFirst(descriptor.parameter_info, descriptor.annotation, descriptor)
        return self._runtime_param

    get_runtime_param._plain_first = True  # type: ignore[attr-defined]
    parameter_class.get_runtime_param = get_runtime_param


_coerce_without_pydantic()


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


def _fail(message: str) -> NoReturn:
    # one line per problem: a ConfigError carries every problem of the configuration
    for line in message.splitlines() or [""]:
        typer.echo(f"qcow2lint: error: {line}", err=True)
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


def _items(values: list[str] | None) -> tuple[str, ...]:
    return tuple(item.strip() for value in values or () for item in value.split(",") if item.strip())


def _command_line(
    select: list[str] | None,
    extend_select: list[str] | None,
    ignore: list[str] | None,
    exclude: list[str] | None,
    docs_url: str | None,
) -> Any:
    from qcow2lint.config import CommandLine

    return CommandLine(
        None if select is None else _items(select),
        _items(extend_select),
        _items(ignore),
        tuple(exclude or ()),
        docs_url,
    )


def _settings(registry: Registry, config: Path | None, preset: str | None, line: Any) -> Any:
    from qcow2lint.config import apply_command_line

    try:
        return apply_command_line(load_config(registry, config, preset=preset), registry, line)
    except ConfigError as exc:
        _fail(str(exc))


def _check_target(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written, before any work."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        _fail(f"{option} {path}: is a directory")
    if not parent.is_dir():
        _fail(f"{option} {path}: no such directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        _fail(f"{option} {path}: permission denied")


def _plural(count: int, word: str) -> str:
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
    parts = ", ".join(_plural(n, name) for name, n in counts.items())
    tail = [f"{_plural(with_findings, 'image')} with findings"]
    if unreadable:
        tail.append(f"{unreadable} not checked")
    if suppressed:
        tail.append(f"{suppressed} suppressed by the baseline")
    return f"checked {_plural(len(reports), 'image')}: {parts} ({', '.join(tail)})\n"


def run_statistics(reports: list[Any]) -> str:
    """Findings per rule over every image of the run."""
    from qcow2lint.text import escape

    per_rule: dict[str, int] = {}
    for report in reports:
        for finding in report.findings:
            key = escape(f"{finding.code} {finding.rule}")
            per_rule[key] = per_rule.get(key, 0) + 1
    lines = [f"findings per rule over {_plural(len(reports), 'image')}:"]
    lines += [f"  {count:>7}  {rule}" for rule, count in sorted(per_rule.items())] or ["        0"]
    return "\n".join(lines) + "\n"


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
    from qcow2lint.findings import ImageReport
    from qcow2lint.inputs import Unmatched, expand
    from qcow2lint.report.text import render_text
    from qcow2lint.runner import Job, run

    registry = _registry()
    line = _command_line(select, extend_select, ignore, exclude, docs_url)
    settings = _settings(registry, config, preset, line)
    for target, option in ((output_file, "--output-file"), (generate_baseline, "--generate-baseline")):
        if target is not None:
            _check_target(target, option)
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
        if show_text and report.error is None:
            # --quiet: the finding lines only; the run's summary line ends the output
            text = render_text(report, statistics, coloured, show_all, summary=not quiet)
            typer.echo(text, nl=False, color=coloured)  # click strips colour off a terminal unless told
    suppressed = accept.suppressed if accept is not None else None
    if show_text and (quiet or len(reports) > 1):
        typer.echo(run_summary(reports, suppressed), nl=False)
    if show_text and statistics and len(reports) > 1:
        typer.echo(run_statistics(reports), nl=False)
    if accept is not None and not silent:
        if not quiet:
            typer.echo(f"qcow2lint: baseline {baseline}: suppressed {_plural(accept.suppressed, 'finding')}", err=True)
        stale = accept.stale()
        if stale:
            typer.echo(
                f"qcow2lint: warning: baseline {baseline}: {stale} of its findings in the checked images no longer "
                "occur (fixed, or moved); regenerate it with --generate-baseline",
                err=True,
            )
    if not generating and (output_format is not Format.text or output_file is not None):
        rendered = _render(output_format, reports, extra, registry, settings, threshold, show_all)
        if output_file is None:
            if not silent:
                typer.echo(rendered, nl=False)
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
            typer.echo(f"wrote {_plural(count, 'entry').replace('entrys', 'entries')} to {generate_baseline}")
        raise typer.Exit(EXIT_ERROR if exit_code == EXIT_ERROR else EXIT_OK)
    if exit_zero and exit_code == EXIT_FINDINGS:
        exit_code = EXIT_OK
    raise typer.Exit(exit_code)


def _baseline_filter(path: Path) -> Any:
    """The ``--baseline`` filter (the baseline module, and json, only when asked for)."""
    from qcow2lint.baseline import BaselineError, BaselineFilter, read_baseline

    try:
        return BaselineFilter(read_baseline(path), root=path.absolute().parent, source=str(path))
    except BaselineError as exc:
        _fail(str(exc))


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
        _fail(f"{path}: cannot write: {exc.strerror or exc}")


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
    from qcow2lint.config import render_config

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
        from qcow2lint.config import reference_config as render

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
