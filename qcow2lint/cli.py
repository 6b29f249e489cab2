"""The ``qcow2lint`` command: runs what the command line asks for (parsed
from the table in :mod:`qcow2lint.options`), calls the library, renders,
and maps outcomes to exit codes.

Exit codes: 0 no finding at or above the fail level, 1 findings at or above
it (root causes and their follow-on findings alike), 2 usage error, bad configuration, broken plugin, or an input that cannot
be read at all.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from qcow2lint.checkcommand import EXIT_ERROR, fail, out, say
from qcow2lint.checkcommand import command_line as _command_line
from qcow2lint.checkcommand import effective_settings as _settings
from qcow2lint.checkcommand import rule_registry as _registry
from qcow2lint.options import ROOT, Invocation, UsageError, Values, help_text, parse
from qcow2lint.text import exception_text

#: The exit code of an interrupted run (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def check(values: Values) -> NoReturn:
    """``qcow2lint check``."""
    from qcow2lint import checkcommand

    checkcommand.check(values)


def dump(values: Values) -> None:
    """``qcow2lint dump``."""
    from qcow2lint.inputs import MISSING, Unmatched
    from qcow2lint.reader import ImageError
    from qcow2lint.report.dump import build_dump
    from qcow2lint.source import display_name, is_url

    image = values.image
    remote = None
    if is_url(image):
        remote = remote_options(values)
    elif not os.path.lexists(image):  # worded as ``check`` words it
        fail(str(Unmatched(str(image), MISSING)))
    try:
        result = build_dump(
            str(image), values.as_json or values.json_document, document=values.json_document, remote=remote
        )
    except ImageError as exc:
        fail(str(exc))
    out(result.text)
    if result.error:
        fail(f"{display_name(image) if remote is not None else image}: {result.error}")


def remote_options(values: Values) -> dict[str, object]:
    """``--storage-option`` and ``--timeout`` as the reader takes them for URLs."""
    from qcow2lint.source import storage_options

    return {"storage_options": storage_options(values.storage_option), "timeout": values.timeout}


def map_image(values: Values) -> None:
    """``qcow2lint map``."""
    from qcow2lint.filemap import run_map
    from qcow2lint.source import display_name, is_url

    if is_url(values.image):
        fail(f"{display_name(values.image)}: map reads local files only (check and dump read URLs)")
    code = run_map(
        str(values.image), None if values.output is None else str(values.output), values.map_format, values.deep
    )
    if code:
        sys.exit(code)


def config(values: Values) -> None:
    """``qcow2lint config``."""
    from qcow2lint.configrender import render_config

    registry = _registry()
    if values.schema:
        from qcow2lint.configschema import render_schema

        out(render_schema(registry))
        return
    line = _command_line(values.select, values.extend_select, values.ignore, values.exclude, values.docs_url)
    out(render_config(_settings(registry, values.config, values.preset, line), registry))


def rules(values: Values) -> None:
    """``qcow2lint rules``."""
    registry = _registry()
    if values.reference_config:
        from qcow2lint.configrender import reference_config as render

        out(render(registry))
        return
    if values.markdown:
        from qcow2lint.report.rulesdoc import rules_markdown

        out(rules_markdown(registry))
        return
    width = max((len(rule.name) for rule in registry), default=4)
    for rule in registry:
        off = "" if rule.default_enabled else " (off by default)"
        out(f"{rule.code}  {rule.name:<{width}}  {str(rule.severity):<7}  {rule.summary}{off}\n")


def rule(values: Values) -> None:
    """``qcow2lint rule NAME``."""
    import difflib

    name = values.name
    registry = _registry()
    found = registry.get(name)
    if found is None:
        close = difflib.get_close_matches(name, [r.name for r in registry], n=1)
        fail(f"unknown rule {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    off = "" if found.default_enabled else "; off by default"
    out(f"{found.name} ({found.code}, default severity {found.severity}{off})\n\n")
    out(found.doc.strip() + "\n")
    if found.stricter_than_qemu:
        import textwrap

        out("\nStricter than qemu-img check:\n")
        out(textwrap.fill(found.stricter_than_qemu, 78, initial_indent="  ", subsequent_indent="  ") + "\n")
    if found.options:
        from qcow2lint.registry import option_schema
        from qcow2lint.text import yaml_value

        out("\nOptions:\n")
        for option, schema in option_schema(found).items():
            allowed = ""
            if "enum" in schema:
                allowed = "; one of " + ", ".join(map(yaml_value, schema["enum"]))
            elif "minimum" in schema or "maximum" in schema:
                low, high = schema.get("minimum", ""), schema.get("maximum", "")
                allowed = f"; {low}..{high}"
            out(f"  {option}: {yaml_value(schema['default'])} ({schema['type']}{allowed})\n")
    if found.repro:
        out("\nReproduction:\n")
        for command in [*found.repro.rstrip("\n").splitlines(), f"qcow2lint check --select {found.name} repro.qcow2"]:
            out(f"  {command}\n")
    out(f"\nPage: docs/rules/{found.name}.md (in the qcow2lint repository)\n")


def completion(values: Values) -> None:
    """``qcow2lint completion SHELL``: the script, whatever shell runs qcow2lint."""
    from qcow2lint.completion import script

    out(script(values.shell))


def complete(values: Values) -> None:
    """The completion scripts' callback: the candidates for the last word."""
    from qcow2lint.completion import candidates

    out("".join(f"{word}\n" for word in candidates(values.shell, values.words)))


#: What each command of :data:`qcow2lint.options.COMMANDS` runs.
RUN: dict[str, Callable[[Values], None]] = {
    "check": check,
    "dump": dump,
    "map": map_image,
    "config": config,
    "rules": rules,
    "rule": rule,
    "completion": completion,
    "__complete": complete,
}


def run(invocation: Invocation) -> None:
    """Do what ``invocation`` asks: a command, its help, the version."""
    if invocation.action == "version":
        from qcow2lint import __version__

        out(f"qcow2lint {__version__}\n")
    elif invocation.action == "help":
        out(help_text(invocation.command))
    elif invocation.action == "no-command":  # the main help, as an error
        sys.stderr.write(help_text(ROOT))
        raise SystemExit(EXIT_ERROR)
    else:
        RUN[invocation.command.name](invocation.values)


def main(invocation: Invocation | None = None) -> None:
    """Console entry point (``invocation``: the command line, parsed
    already): one line on stderr for every error, never a traceback."""
    for stream in (sys.stdout, sys.stderr):
        # An ASCII-only stream (LC_ALL=C on an old Python, PYTHONIOENCODING)
        # would refuse a rule's documentation: write UTF-8 to it.
        encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
        if encoding in ("ascii", "us-ascii", "ansi_x3.4-1968") and hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors="replace")
    try:
        run(invocation if invocation is not None else parse(sys.argv[1:]))
    except UsageError as exc:
        say(f"qcow2lint: error: {exc}")
        sys.exit(EXIT_ERROR)
    except KeyboardInterrupt:
        say("qcow2lint: interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # Whoever read stdout went away (``| head``): say nothing more, and
        # keep the interpreter's last flush of stdout from failing too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except MemoryError as exc:  # a limit, not a bug: say so, never an empty message
        say(f"qcow2lint: error: {exception_text(exc)}")
        sys.exit(EXIT_ERROR)
    except Exception as exc:  # last line of defence: one line, not a traceback
        say(f"qcow2lint: internal error: {exception_text(exc)} (please report this)")
        sys.exit(EXIT_ERROR)
