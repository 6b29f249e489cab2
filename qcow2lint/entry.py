"""The console entry point: answers ``qcow2lint --version`` before the CLI
(typer, the configuration, the registry) is imported, so that it costs
about an interpreter start (issue 13), and runs a plain ``qcow2lint check
IMAGE...`` without typer (:func:`qcow2lint.checkcommand.main_plain`);
everything else goes to :func:`qcow2lint.cli.main`."""

from __future__ import annotations

import os
import sys


def plain_check(args: list[str]) -> bool:
    """Whether ``args`` are ``check`` and image arguments only: nothing
    typer would read as an option (no argument starts with ``-``), no shell
    completion request, and standard streams that need no re-encoding."""
    if len(args) < 2 or args[0] != "check" or any(arg.startswith("-") for arg in args[1:]):
        return False
    if any(name.startswith("_") and name.endswith("_COMPLETE") for name in os.environ):
        return False  # typer's shell completion (_QCOW2LINT_COMPLETE, named after the program)
    from qcow2lint.checkcommand import plain_streams

    return plain_streams()


def main() -> None:
    """``qcow2lint``: ``--version`` at once, a plain ``check`` without
    typer, every other command through the CLI."""
    # At exit the interpreter collects garbage over every object it holds
    # (numpy's and every module's) before tearing the modules down: 12 ms
    # of a small image's check, for nothing, as a finished run leaves no
    # garbage cycle that needs finalizing (files are closed by then, and
    # the standard streams are flushed regardless).  Frozen objects are
    # left out of that collection.  Registered first, so it runs last.
    import atexit
    import gc

    atexit.register(gc.freeze)
    args = sys.argv[1:]
    if args == ["--version"]:
        from qcow2lint import __version__

        sys.stdout.write(f"qcow2lint {__version__}\n")
        return
    if plain_check(args):
        from qcow2lint.checkcommand import main_plain

        main_plain(args[1:])
    from qcow2lint.cli import main as cli_main

    cli_main()
