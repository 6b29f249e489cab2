"""Every command and option of ``qcow2lint``, declared once.

:data:`COMMANDS` is the table: each :class:`Command` lists its
:class:`Argument` s and :class:`Option` s (flags, value type, choices,
default, metavar, help).  Everything that reads or describes the command
line is built from it: :func:`parse` (the only parser), :func:`help_text`
(``--help``), :func:`markdown` (the README's usage block and
``docs/cli.md``, written by ``python -m qcow2lint.gen``) and shell
completion (:mod:`qcow2lint.completion`).

To add an option, declare it once (``MY_OPTION = Option(...)``) and list
it in the commands that take it; to add a command, append a
:class:`Command` to :data:`COMMANDS` and a function of the same name to
:data:`qcow2lint.cli.RUN`.  The command receives the parsed
:class:`Values` (one attribute per option's ``dest`` and argument's
``dest``).

This module is imported on every run, ``--version`` included: it needs
nothing beyond the standard library's core.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path


class UsageError(Exception):
    """A command line qcow2lint cannot run: the message is one line that
    names the option or argument and what it accepts."""


# ---------------------------------------------------------------------------
# value types
# ---------------------------------------------------------------------------


class Value:
    """What an option or argument takes: ``metavar`` shows it in the help,
    ``expects`` says it in an error, :meth:`convert` turns the text into
    the value the command gets (raising ValueError when it does not fit)."""

    metavar = "TEXT"
    expects = "a value"
    #: What a word of this type is, for an error: ``unknown preset 'x'``.
    noun = ""
    #: What shell completion proposes: "" nothing, "files", "rules" (rule
    #: names), or "choices" (:meth:`choices`).
    complete = ""

    def convert(self, text: str) -> Any:
        """The value of ``text`` (this type: the text itself)."""
        return text

    def choices(self) -> Sequence[str]:
        """The accepted words, when there is a fixed set."""
        return ()


class Text(Value):
    """Any text; ``complete`` says what completion proposes for it."""

    def __init__(self, metavar: str = "TEXT", complete: str = "") -> None:
        self.metavar = metavar
        self.complete = complete


class File(Value):
    """A path (not opened here: the command says what is wrong with it)."""

    expects = "a path"
    complete = "files"

    def __init__(self, metavar: str = "FILE") -> None:
        self.metavar = metavar

    def convert(self, text: str) -> Path:
        """The path ``text`` names."""
        from pathlib import Path  # not for --version: an installed qcow2lint's start-up

        return Path(text)


class Count(Value):
    """A whole number at or above ``minimum``."""

    metavar = "N"

    def __init__(self, minimum: int = 0) -> None:
        self.minimum = minimum
        self.expects = f"a whole number >= {minimum}"

    def convert(self, text: str) -> int:
        """``text`` as an int, refused below ``minimum``."""
        value = int(text, 10)
        if value < self.minimum:
            raise ValueError(text)
        return value


class Seconds(Value):
    """A number of seconds above 0 (``2``, ``0.5``)."""

    metavar = "SECONDS"
    expects = "a number of seconds > 0"

    def convert(self, text: str) -> float:
        """``text`` as a float, refused at or below 0 (and for nan, inf)."""
        value = float(text)
        if not 0 < value < float("inf"):
            raise ValueError(text)
        return value


class KeyValue(Value):
    """``KEY=VALUE``: the command gets the text (checked for the ``=``)."""

    metavar = "KEY=VALUE"
    expects = "KEY=VALUE"

    def convert(self, text: str) -> str:
        """``text``, refused without a key and an ``=``."""
        key, equals, _ = text.partition("=")
        if not equals or not key.strip():
            raise ValueError(text)
        return text


class Choice(Value):
    """One word of a fixed set: an enum's values, or the names a function
    gives (read when first needed, such as the preset files)."""

    complete = "choices"

    def __init__(
        self,
        names: Callable[[], Sequence[str]],
        metavar: str,
        enum_type: type[enum.Enum] | None = None,
        noun: str = "",
    ) -> None:
        self._names = names
        self._enum = enum_type
        self.metavar = metavar
        self.noun = noun

    @classmethod
    def of(cls, enum_type: type[enum.Enum], metavar: str) -> Choice:
        """The values of ``enum_type``; the command gets the member."""
        return cls(lambda: [member.value for member in enum_type.__members__.values()], metavar, enum_type)

    def choices(self) -> Sequence[str]:
        """The accepted words, in the table's order."""
        return list(self._names())

    @property
    def expects(self) -> str:  # type: ignore[override]
        """``one of a, b, c``."""
        return "one of " + ", ".join(self.choices())

    def convert(self, text: str) -> Any:
        """The enum member (or the word) ``text`` names."""
        if text not in self.choices():
            raise ValueError(text)
        return self._enum(text) if self._enum is not None else text


class Format(str, enum.Enum):
    """Report formats of ``check``."""

    text = "text"
    json = "json"
    jsonl = "jsonl"
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


#: The formats of ``map`` (see :mod:`qcow2lint.filemap`).
MAP_FORMATS = ("html", "svg", "png", "json")

#: The shells whose completion script qcow2lint prints.
SHELLS = ("bash", "zsh", "fish")


def presets() -> list[str]:
    """The built-in presets: the files of the package's ``presets`` directory."""
    folder = os.path.join(os.path.dirname(__file__), "presets")
    return sorted(name[: -len(".yaml")] for name in os.listdir(folder) if name.endswith(".yaml"))


# ---------------------------------------------------------------------------
# the table's building blocks
# ---------------------------------------------------------------------------


class Option:
    """One option: its flags (the long one first), the value it takes
    (None: a flag, True when given), whether it may be repeated (the
    command then gets a list), its default and help."""

    def __init__(
        self,
        flags: Sequence[str],
        help: str,  # noqa: A002
        value: Value | None = None,
        *,
        dest: str | None = None,
        default: Any = None,
        multiple: bool = False,
        hidden: bool = False,
    ) -> None:
        self.flags = tuple(flags)
        self.help = help
        self.value = value
        self.dest = dest or self.flags[0].lstrip("-").replace("-", "_")
        self.default = False if value is None and default is None else default
        self.multiple = multiple
        self.hidden = hidden

    @property
    def name(self) -> str:
        """The long flag, which errors name."""
        return self.flags[0]

    def signature(self) -> str:
        """``-j, --jobs N`` as the help shows it."""
        flags = sorted(self.flags, key=len)
        return ", ".join(flags) + (f" {self.value.metavar}" if self.value else "")

    def described(self) -> str:
        """The help with the accepted words and the default, if any."""
        text = self.help
        extra = []
        if self.value is not None and self.value.complete == "choices":
            extra.append("one of: " + ", ".join(self.value.choices()))
        if self.value is not None and self.default is not None:
            default = self.default.value if isinstance(self.default, enum.Enum) else self.default
            extra.append(f"default: {default}")
        return text + (f" [{'; '.join(extra)}]" if extra else "")


class Argument:
    """A positional argument; ``many``: one or more."""

    def __init__(self, dest: str, help: str, value: Value, *, many: bool = False) -> None:  # noqa: A002
        self.dest = dest
        self.help = help
        self.value = value
        self.many = many

    @property
    def metavar(self) -> str:
        """``IMAGE...`` for one or more, ``NAME`` for one."""
        return self.value.metavar + ("..." if self.many else "")


class Command:
    """A command: its name, one-line summary, longer help, arguments,
    options and the text after the options (the epilog)."""

    def __init__(
        self,
        name: str,
        summary: str,
        options: Sequence[Option] = (),
        arguments: Sequence[Argument] = (),
        *,
        description: str = "",
        epilog: str = "",
        hidden: bool = False,
    ) -> None:
        self.name = name
        self.summary = summary
        self.options = [*options, HELP]
        self.arguments = list(arguments)
        self.description = description or summary
        self.epilog = epilog
        self.hidden = hidden

    def option(self, flag: str) -> Option | None:
        """The option ``flag`` (long or short) names."""
        for option in self.options:
            if flag in option.flags:
                return option
        return None

    def usage(self) -> str:
        """``qcow2lint check [OPTIONS] IMAGE...``."""
        words = [PROGRAM] + ([self.name] if self.name else []) + ["[OPTIONS]"]
        words += [argument.metavar for argument in self.arguments]
        return " ".join(words)


PROGRAM = "qcow2lint"

HELP = Option(("--help", "-h"), "Show this message and exit.")

# ---------------------------------------------------------------------------
# the options, each declared once
# ---------------------------------------------------------------------------

RULES = Text("RULES", complete="rules")

CONFIG = Option(("--config", "-c"), "Configuration file (default: discovered upwards).", File())
PRESET = Option(
    ("--preset",),
    "Start from a built-in preset; no configuration is discovered, a --config file applies on top.",
    Choice(presets, "NAME", noun="preset"),
)
SELECT = Option(
    ("--select",),
    "Enable only these rules (names, codes, code prefixes like Q07, or ALL; comma-separated or repeated), "
    "on top of the configuration.",
    RULES,
    multiple=True,
)
EXTEND_SELECT = Option(
    ("--extend-select",),
    "Enable these rules too (names, codes, code prefixes), on top of the configuration and --select.",
    RULES,
    multiple=True,
)
IGNORE = Option(
    ("--ignore",),
    "Disable these rules (names, codes, code prefixes), after --select and --extend-select.",
    RULES,
    multiple=True,
)
EXCLUDE = Option(
    ("--exclude",),
    "Skip paths matching GLOB when a directory or glob is searched (repeatable; added to the configuration's exclude).",
    Text("GLOB"),
    multiple=True,
)
DOCS_URL = Option(
    ("--docs-url",),
    "Base URL of the rule pages (NAME.md) for SARIF's helpUri (default: the configuration's docs-url, else "
    "$QCOW2LINT_DOCS_URL, else the file:// URI of docs/rules/ in a source checkout).",
    Text("URL"),
)
FORMAT = Option(
    ("--format", "-f"), "Report format.", Choice.of(Format, "FORMAT"), dest="output_format", default=Format.text
)
FAIL_LEVEL = Option(
    ("--fail-level",),
    "Exit 1 when a finding has this severity or worse.",
    Choice.of(Level, "LEVEL"),
    default=Level.error,
)
QUIET = Option(("--quiet", "-q"), "Text: print only the findings and the final summary line.")
SILENT = Option(
    ("--silent", "-s"),
    "Print nothing on stdout (files named by -o and --generate-baseline are still written; errors still get "
    "their line on stderr): the exit code says it all.",
)
COLOR = Option(
    ("--color",),
    "Colour the text report: auto (a terminal, unless NO_COLOR is set; FORCE_COLOR forces it), always or never.",
    Choice.of(Colour, "WHEN"),
    dest="colour",
    default=Colour.auto,
)
DUMP = Option(("--dump",), "Print the standard header dump before the findings.")
STATISTICS = Option(
    ("--statistics",),
    "Print findings per rule and qemu-img check's figures per image, and findings per rule over the run.",
)
DEEP = Option(("--deep",), "Also decompress every compressed cluster (slow on large images).")
JOBS = Option(
    ("--jobs", "-j"),
    "Check images in N parallel processes (0: one per CPU); same output order.",
    Count(0),
    default=1,
)
SCHEDULER = Option(
    ("--scheduler",),
    "Check the images on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786), or on a local "
    "cluster of --jobs worker processes (local; one per CPU without --jobs); same output order. Needs "
    "qcow2lint[fleet].",
    Text("ADDRESS"),
)
EXIT_ZERO = Option(("--exit-zero",), "Exit 0 even when findings reach the fail level (2 still means unreadable).")
OUTPUT_FILE = Option(
    ("--output-file", "-o"),
    "Write the --format report to FILE; the text report still goes to the terminal.",
    File(),
)
BASELINE = Option(
    ("--baseline",),
    "Report only findings the baseline FILE does not hold; say how many it suppressed and warn about entries "
    "that match nothing any more.",
    File(),
)
GENERATE_BASELINE = Option(
    ("--generate-baseline",),
    "Write every current finding's fingerprint to FILE (image paths relative to FILE's directory), print how "
    "many entries, exit 0; no report.",
    File(),
)
SHOW_ALL = Option(
    ("--show-all",),
    "List the follow-on findings of each root cause too (the text report lists root causes with a count of "
    "their follow-on findings).",
)

TIMEOUT = Option(
    ("--timeout",),
    "Seconds each request for a URL may take (each is tried 4 times); see docs/remote.md.",
    Seconds(),
    default=30.0,
)
STORAGE_OPTION = Option(
    ("--storage-option",),
    "An fsspec storage option for URLs, such as endpoint_url=http://127.0.0.1:9000 or anon=true "
    "(repeatable; VALUE is read as JSON when it parses).",
    KeyValue(),
    multiple=True,
)

#: The options ``check`` and ``config`` share: how the configuration is chosen.
SELECTION = [CONFIG, PRESET, SELECT, EXTEND_SELECT, IGNORE, EXCLUDE]

VERSION = Option(("--version",), "Show the version and exit.")
SHOW_COMPLETION = Option(
    ("--show-completion",),
    "Print the completion script for SHELL (the same as the completion command).",
    Choice(lambda: SHELLS, "SHELL"),
)

CHECK_EPILOG = """\
Exit codes:
  0  no finding at or above --fail-level (or --exit-zero, or --generate-baseline)
  1  findings at or above --fail-level
  2  usage error, bad configuration or baseline, broken rule plugin, an output file that cannot be
     written, or an input that cannot be read at all (one line on stderr each)"""

ROOT = Command(
    "",
    "Lint QEMU qcow2 disk images.",
    [VERSION, SHOW_COMPLETION],
    description="Lint QEMU qcow2 disk images: spec violations, QEMU refusals, and the standard header dump. "
    "Shell completion: qcow2lint completion SHELL prints the script for bash, zsh or fish.",
)

COMMANDS = [
    Command(
        "check",
        "Check images and report findings with rule names, offsets and structure paths.",
        [
            CONFIG,
            PRESET,
            FORMAT,
            FAIL_LEVEL,
            SELECT,
            EXTEND_SELECT,
            IGNORE,
            EXCLUDE,
            QUIET,
            SILENT,
            COLOR,
            DUMP,
            STATISTICS,
            DEEP,
            JOBS,
            SCHEDULER,
            EXIT_ZERO,
            OUTPUT_FILE,
            BASELINE,
            GENERATE_BASELINE,
            DOCS_URL,
            SHOW_ALL,
            TIMEOUT,
            STORAGE_OPTION,
        ],
        [
            Argument(
                "images",
                "Image files, directories (searched recursively for *.qcow2 and files with the qcow2 magic), "
                "glob patterns (** for any depth) and URLs (https://, s3://, ...; one ending in / is listed).",
                Text("IMAGE", complete="files"),
                many=True,
            )
        ],
        epilog=CHECK_EPILOG,
    ),
    Command(
        "dump",
        "Print the standard dump, byte-identical to QEMU's qcow2.py dump-header.",
        [
            Option(
                ("--json",),
                "JSON, byte-identical to qcow2.py -j: two JSON documents, the header then the list of header "
                "extensions (-j means --jobs everywhere in qcow2lint).",
                dest="as_json",
            ),
            Option(
                ("--json-document",),
                'One JSON document instead: {"header": {...}, "header_extensions": [...]}.',
                dest="json_document",
            ),
            TIMEOUT,
            STORAGE_OPTION,
        ],
        [Argument("image", "Image file or URL to dump.", Text("IMAGE", complete="files"))],
    ),
    Command(
        "map",
        "Draw the image: what every host cluster holds, the guest's view, the figures and the findings.",
        [
            Option(
                ("--output-file", "-o"),
                "Write the map to FILE (html, svg, png or json; json without -o goes to standard output).",
                File(),
                dest="output",
            ),
            Option(
                ("--format", "-f"),
                "Map format (default: from FILE's suffix; json without -o).",
                Choice(lambda: MAP_FORMATS, "FORMAT"),
                dest="map_format",
            ),
            Option(("--deep",), "Also decompress every compressed cluster for the findings."),
        ],
        [Argument("image", "Image file to draw.", Text("IMAGE", complete="files"))],
    ),
    Command(
        "config",
        "Print the effective configuration and where each value came from.",
        [
            *SELECTION,
            DOCS_URL,
            Option(
                ("--schema",),
                "Print the configuration file's JSON Schema (every rule and its options) instead.",
            ),
        ],
    ),
    Command(
        "rules",
        "List every rule: code, name, default severity, summary.",
        [
            Option(("--reference-config",), "Print the reference configuration (config.yaml) instead."),
            Option(("--markdown",), "Print the rules reference (docs/rules.md) instead."),
        ],
    ),
    Command(
        "rule", "Print a rule's documentation.", [], [Argument("name", "Rule name or code.", Text("NAME", "rules"))]
    ),
    Command(
        "completion",
        "Print the shell completion script for SHELL (bash, zsh or fish).",
        [],
        [Argument("shell", "The shell the script is for.", Choice(lambda: SHELLS, "SHELL"))],
        epilog="Load it in the running shell:\n"
        "  bash:  source <(qcow2lint completion bash)\n"
        "  zsh:   source <(qcow2lint completion zsh)   (after compinit)\n"
        "  fish:  qcow2lint completion fish | source\n"
        "or write it where the shell reads completions (such as\n"
        "/usr/share/bash-completion/completions/qcow2lint, a directory of $fpath as _qcow2lint,\n"
        "~/.config/fish/completions/qcow2lint.fish).",
    ),
    Command(
        "__complete",
        "Complete the last of WORDS (called by the completion scripts).",
        [],
        [
            Argument("shell", "The shell asking.", Choice(lambda: SHELLS, "SHELL")),
            Argument("words", "The command line so far, the word to complete last.", Text("WORD"), many=True),
        ],
        hidden=True,
    ),
]

#: The commands by name.
BY_NAME = {command.name: command for command in COMMANDS}

# ---------------------------------------------------------------------------
# the parser
# ---------------------------------------------------------------------------


class Values:
    """The parsed command line: one attribute per option and argument."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # for mypy: every attribute is the table's
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Values({self.__dict__!r})"


class Invocation:
    """What to do: ``action`` is ``run`` (the command with its values),
    ``help`` (the command's help), ``version`` or ``no-command`` (no
    command given: the main help, as an error)."""

    def __init__(self, action: str, command: Command, values: Values) -> None:
        self.action = action
        self.command = command
        self.values = values


def _close(word: str, candidates: Sequence[str]) -> str:
    """`` (did you mean X?)`` when one candidate is close to ``word``."""
    import difflib

    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.75)
    return f" (did you mean {match[0]}?)" if match else ""


#: Options qcow2lint no longer has, and what to use instead.
RETIRED = {
    "--install-completion": "write the output of 'qcow2lint completion SHELL' where your shell reads completions",
}


def _unknown(command: Command, flag: str) -> UsageError:
    """The error for an option ``command`` does not have."""
    where = f"{command.name}: " if command.name else ""
    if flag in RETIRED:
        return UsageError(f"{where}{flag} is gone: {RETIRED[flag]}")
    return UsageError(f"{where}no such option: {flag}{_close(flag, _visible_flags(command))}")


def _visible_flags(command: Command) -> list[str]:
    return [flag for option in command.options if not option.hidden for flag in option.flags]


def _scan(command: Command, args: Sequence[str]) -> tuple[list[tuple[Option, str, str | None]], list[str]]:
    """Split ``args`` into the options given (option, flag as written,
    value text) and the positional words, as POSIX tools and click do:
    options anywhere, ``--opt=VALUE`` or ``--opt VALUE``, short flags
    bundled (``-qs``), a short option's value attached (``-j2``), and
    ``--`` ending the options."""
    given: list[tuple[Option, str, str | None]] = []
    positional: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            positional += args[index:]
            break
        if arg.startswith("--"):
            flag, equals, attached = arg.partition("=")
            option = command.option(flag)
            if option is None:
                raise _unknown(command, flag)
            if option.value is None:
                if equals:
                    raise UsageError(f"{flag}: takes no value, got {arg!r}")
                given.append((option, flag, None))
                continue
            if not equals:
                if index >= len(args):
                    raise UsageError(f"{option.name}: needs a value: {option.value.expects}")
                attached = args[index]
                index += 1
            given.append((option, flag, attached))
            continue
        if arg.startswith("-") and len(arg) > 1:
            for position in range(1, len(arg)):
                flag = "-" + arg[position]
                option = command.option(flag)
                if option is None:
                    raise _unknown(command, flag)
                if option.value is None:
                    given.append((option, flag, None))
                    continue
                value = arg[position + 1 :]
                if not value:
                    if index >= len(args):
                        raise UsageError(f"{option.name}: needs a value: {option.value.expects}")
                    value = args[index]
                    index += 1
                given.append((option, flag, value))
                break
            continue
        positional.append(arg)
        if not command.name:  # the command's name: the rest is the command's
            positional += args[index:]
            break
    return given, positional


def _convert(value: Value, text: str, name: str) -> Any:
    try:
        return value.convert(text)
    except ValueError:
        if value.noun:
            raise UsageError(f"{name}: unknown {value.noun} {text!r}, expected {value.expects}") from None
        raise UsageError(f"{name}: expected {value.expects}, got {text!r}") from None


def _values(command: Command, given: list[tuple[Option, str, str | None]], positional: list[str]) -> Values:
    """The command's values: defaults, then the options as given (a
    repeated option adds to the list, or the last one wins), then the
    arguments."""
    values: dict[str, Any] = {
        option.dest: (None if option.multiple else option.default) for option in command.options if option is not HELP
    }
    for option, _flag, text in given:
        if option is HELP:
            continue
        if option.value is None:
            values[option.dest] = True
        elif option.multiple:
            values[option.dest] = [*(values[option.dest] or ()), _convert(option.value, str(text), option.name)]
        else:
            values[option.dest] = _convert(option.value, str(text), option.name)
    where = f"{command.name}: "
    words = list(positional)
    for argument in command.arguments:
        if not words:
            raise UsageError(f"{where}missing argument {argument.metavar}")
        if argument.many:
            taken, words = words, []
            values[argument.dest] = [_convert(argument.value, word, argument.metavar) for word in taken]
        else:
            values[argument.dest] = _convert(argument.value, words.pop(0), argument.metavar)
    if words:
        raise UsageError(f"{where}unexpected extra argument {words[0]!r}")
    return Values(**values)


def parse(args: Sequence[str]) -> Invocation:
    """What the command line ``args`` (without the program name) asks for;
    :class:`UsageError` when it asks for nothing qcow2lint can do.

    ``--help`` and ``--version`` win over the command's other options and
    arguments (the options must still be known ones)."""
    given, rest = _scan(ROOT, args)
    flags = [option for option, _, _ in given]
    root = _values(ROOT, given, [])
    if HELP in flags:
        return Invocation("help", ROOT, root)
    if VERSION in flags:
        return Invocation("version", ROOT, root)
    if root.show_completion is not None:
        return Invocation("run", BY_NAME["completion"], Values(shell=root.show_completion))
    if not rest:
        return Invocation("no-command", ROOT, root)
    name, args = rest[0], rest[1:]
    command = BY_NAME.get(name)
    if command is None:
        names = [c.name for c in COMMANDS if not c.hidden]
        raise UsageError(f"no such command {name!r}{_close(name, names)} (commands: {', '.join(names)})")
    given, positional = _scan(command, args)
    if any(option is HELP for option, _, _ in given):
        return Invocation("help", command, Values())
    return Invocation("run", command, _values(command, given, positional))


# ---------------------------------------------------------------------------
# help and documentation
# ---------------------------------------------------------------------------


def terminal_width() -> int:
    """The width help is wrapped to: the terminal's, at most 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        try:
            columns = os.get_terminal_size(sys.stdout.fileno()).columns
        except (OSError, ValueError, AttributeError):
            columns = 80
    return max(min(columns, 80) - 2, 50)


def _rows(rows: list[tuple[str, str]], width: int) -> list[str]:
    """A two-column list: the terms, and their text wrapped beside them."""
    import textwrap

    column = min(max((len(term) for term, _ in rows), default=0), 28) + 4
    lines = []
    for term, text in rows:
        wrapped = textwrap.wrap(text, max(width - column, 20), break_on_hyphens=False) or [""]
        if len(term) + 4 > column:
            lines.append(f"  {term}")
        else:
            lines.append(f"  {term:<{column - 2}}{wrapped.pop(0)}")
        lines += [" " * column + line for line in wrapped]
    return lines


def help_text(command: Command, width: int | None = None) -> str:
    """The command's ``--help``."""
    import textwrap

    width = width or terminal_width()
    if command is ROOT:
        usage = f"Usage: {PROGRAM} [OPTIONS] COMMAND [ARGS]..."
    else:
        usage = "Usage: " + command.usage()
    lines = [usage, ""]
    lines += textwrap.wrap(
        command.description, width - 2, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False
    )
    if command.arguments:
        lines += ["", "Arguments:"]
        lines += _rows([(a.metavar, a.help) for a in command.arguments], width)
    lines += ["", "Options:"]
    lines += _rows([(o.signature(), o.described()) for o in command.options if not o.hidden], width)
    if command is ROOT:
        lines += ["", "Commands:"]
        lines += _rows([(c.name, c.summary) for c in COMMANDS if not c.hidden], width)
    if command.epilog:
        lines += [""] + ["  " + line if line else "" for line in command.epilog.splitlines()]
    return "\n".join(lines) + "\n"


def markdown() -> str:
    """Every command with its arguments and options, in Markdown (``docs/cli.md``)."""
    lines = [f"`{PROGRAM} COMMAND --help` prints the same; `-h` is `--help` everywhere.", ""]
    lines += _markdown_options(ROOT, f"## `{PROGRAM}`")
    for command in COMMANDS:
        if not command.hidden:
            lines += _markdown_options(command, f"## `{PROGRAM} {command.name}`")
    return "\n".join(lines).rstrip("\n") + "\n"


def _markdown_options(command: Command, title: str) -> list[str]:
    usage = command.usage() if command is not ROOT else f"{PROGRAM} [OPTIONS] COMMAND [ARGS]..."
    lines = [title, "", command.description, "", "```", usage, "```", ""]
    if command.arguments:
        lines += ["| Argument | |", "|---|---|"]
        lines += [f"| `{a.metavar}` | {_cell(a.help)} |" for a in command.arguments]
        lines.append("")
    lines += ["| Option | |", "|---|---|"]
    lines += [f"| `{o.signature()}` | {_cell(o.described())} |" for o in command.options if not o.hidden]
    lines.append("")
    if command.epilog:
        lines += ["```", command.epilog, "```", ""]
    return lines


def _cell(text: str) -> str:
    """``text`` as a Markdown table cell says it (no emphasis, no column break)."""
    for special in ("\\", "|", "*", "_", "`"):
        text = text.replace(special, "\\" + special)
    return text


def usage_block() -> str:
    """The README's usage block: each command's usage line and summary."""
    rows = [(command.usage(), command.summary) for command in COMMANDS if not command.hidden]
    rows.append((f"{PROGRAM} --version", VERSION.help))
    width = max(len(usage) for usage, _ in rows)
    lines = ["```"]
    lines += [f"{usage:<{width}}  # {summary}" for usage, summary in rows]
    lines.append("```")
    return "\n".join(lines) + "\n"
