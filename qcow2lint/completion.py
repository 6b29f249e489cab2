"""Shell completion for bash, zsh and fish, from the table in
:mod:`qcow2lint.options`.

Each shell's script is small: at every Tab it runs ``qcow2lint __complete
SHELL -- WORDS...`` (the command line up to the word being completed, that
word last) and offers the lines printed.  :func:`candidates` computes them
from the table: commands, options, the words of a choice (presets,
formats, levels, colour), rule names (for ``rule NAME``, ``--select``,
``--extend-select``, ``--ignore``; after a comma too), or the line
``:files:PREFIX`` when the shell should complete file names itself (PREFIX:
the part of the word that is not the file name, such as ``--config=``).
"""

from __future__ import annotations

from collections.abc import Sequence

from qcow2lint.options import BY_NAME, COMMANDS, ROOT, Command, Option, Value

#: The line that asks the shell to complete file names.
FILES = ":files:"


def _values(value: Value, text: str, prefix: str = "") -> list[str]:
    """The completions of ``text`` as a value of ``value``'s type."""
    if value.complete == "files":
        return [FILES + prefix]
    if value.complete == "choices":
        return [prefix + word for word in value.choices() if word.startswith(text)]
    if value.complete == "rules":
        head, comma, tail = text.rpartition(",")
        return [prefix + head + comma + name for name in _rule_names() if name.startswith(tail)]
    return []


def _rule_names() -> list[str]:
    """Every rule's name (built-in and plugins); none if the rules cannot load."""
    from qcow2lint.registry import RegistryError, load_registry

    try:
        return [rule.name for rule in load_registry()]
    except RegistryError:
        return []


def _join_equals(words: list[str]) -> tuple[list[str], str]:
    """bash splits ``--preset=st`` into ``--preset``, ``=``, ``st``: the words
    as the other shells see them, and the prefix bash keeps in front of the
    value being completed (``=`` when the word under the cursor is ``=``)."""
    joined: list[str] = []
    prefix = ""
    for index, word in enumerate(words):
        if word == "=" and joined and joined[-1].startswith("--"):
            joined[-1] += "="
            if index == len(words) - 1:
                prefix = "="
        elif joined and joined[-1].startswith("--") and joined[-1].endswith("=") and words[index - 1] == "=":
            joined[-1] += word
        else:
            joined.append(word)
    return joined, prefix


def candidates(shell: str, words: Sequence[str]) -> list[str]:
    """What can replace the last of ``words`` (the program's name first)."""
    words = list(words) or [""]
    bash_prefix = None
    if shell == "bash":
        words, bash_prefix = _join_equals(words)
    args, current = words[1:-1], words[-1]
    command: Command = ROOT
    expecting: Option | None = None
    positional = 0
    only_arguments = False
    for arg in args:
        if expecting is not None:
            expecting = None
            continue
        if arg == "--" and not only_arguments:
            only_arguments = True
            continue
        if arg.startswith("-") and len(arg) > 1 and not only_arguments:
            expecting = _takes_next(command, arg)
            continue
        if command is ROOT:
            found = BY_NAME.get(arg)
            if found is None:
                return []
            command = found
        else:
            positional += 1
    if expecting is not None and expecting.value is not None:
        return _values(expecting.value, current, bash_prefix or "")
    if current.startswith("--") and "=" in current and not only_arguments:
        flag, _, text = current.partition("=")
        option = command.option(flag)
        if option is None or option.value is None:
            return []
        # bash offers the value alone (its word is the part after "=")
        return _values(option.value, text, bash_prefix if bash_prefix is not None else flag + "=")
    if current.startswith("-") and not only_arguments:
        flags = [flag for option in command.options if not option.hidden for flag in option.flags]
        return [flag for flag in flags if flag.startswith(current) and (flag.startswith("--") or current != "-")]
    if command is ROOT:
        return [c.name for c in COMMANDS if not c.hidden and c.name.startswith(current)]
    arguments = command.arguments
    if not arguments or (positional >= len(arguments) and not arguments[-1].many):
        return []
    return _values(arguments[min(positional, len(arguments) - 1)].value, current)


def _takes_next(command: Command, arg: str) -> Option | None:
    """The option ``arg`` names if its value is the next word."""
    if arg.startswith("--"):
        if "=" in arg:
            return None
        option = command.option(arg)
        return option if option is not None and option.value is not None else None
    for position in range(1, len(arg)):  # bundled short flags: -qj N
        option = command.option("-" + arg[position])
        if option is None:
            return None
        if option.value is not None:
            return option if position == len(arg) - 1 else None
    return None


BASH = """\
# bash completion for qcow2lint: source <(qcow2lint completion bash)
_qcow2lint() {
    local cur="${COMP_WORDS[COMP_CWORD]}" IFS=$'\\n'
    local -a reply
    reply=($(qcow2lint __complete bash -- "${COMP_WORDS[@]:0:COMP_CWORD+1}" 2>/dev/null))
    if [[ ${#reply[@]} -eq 1 && ${reply[0]} == :files:* ]]; then
        local prefix="${reply[0]#:files:}"
        COMPREPLY=($(compgen -f -P "$prefix" -- "${cur#"$prefix"}"))
        compopt -o filenames 2>/dev/null || true
    else
        COMPREPLY=("${reply[@]}")
    fi
}
complete -F _qcow2lint qcow2lint
"""

ZSH = """\
#compdef qcow2lint
# zsh completion for qcow2lint: source <(qcow2lint completion zsh) after compinit,
# or save it as _qcow2lint in a directory of $fpath
_qcow2lint() {
    local -a reply
    reply=("${(@f)$(qcow2lint __complete zsh -- "${(@)words[1,CURRENT]}" 2>/dev/null)}")
    if [[ ${#reply} -eq 1 && $reply[1] == :files:* ]]; then
        local prefix="${reply[1]#:files:}"
        [[ -n $prefix ]] && compset -P "$prefix"
        _files
    elif [[ -n $reply[1] ]]; then
        compadd -- "${(@)reply}"
    fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _qcow2lint "$@"
else
    compdef _qcow2lint qcow2lint
fi
"""

FISH = """\
# fish completion for qcow2lint: qcow2lint completion fish | source
function __qcow2lint_complete
    set -l current (commandline -ct)
    set -l reply (qcow2lint __complete fish -- (commandline -opc) "$current" 2>/dev/null)
    if test (count $reply) -eq 1; and string match -q -- ':files:*' $reply[1]
        set -l prefix (string replace -- ':files:' '' $reply[1])
        set -l path (string replace -- "$prefix" '' "$current")
        for file in (__fish_complete_path "$path")
            printf '%s%s\\n' "$prefix" "$file"
        end
    else
        printf '%s\\n' $reply
    end
end
complete -c qcow2lint -f -a '(__qcow2lint_complete)'
"""

SCRIPTS = {"bash": BASH, "zsh": ZSH, "fish": FISH}


def script(shell: str) -> str:
    """The completion script for ``shell`` (bash, zsh or fish)."""
    return SCRIPTS[shell]
