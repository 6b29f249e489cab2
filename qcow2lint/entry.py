"""The console entry point: parses the command line with the table of
:mod:`qcow2lint.options` and answers ``--version`` at once, so that it costs
about an interpreter start; everything else goes to
:func:`qcow2lint.cli.main`."""

from __future__ import annotations

import sys


def main() -> None:
    """``qcow2lint``: parse, answer ``--version``, run everything else."""
    # At exit the interpreter collects garbage over every object it holds
    # (numpy's and every module's) before tearing the modules down: 12 ms
    # of a small image's check, for nothing, as a finished run leaves no
    # garbage cycle that needs finalizing (files are closed by then, and
    # the standard streams are flushed regardless).  Frozen objects are
    # left out of that collection.  Registered first, so it runs last.
    import atexit
    import gc

    atexit.register(gc.freeze)
    from qcow2lint.options import UsageError, parse

    try:
        invocation = parse(sys.argv[1:])
    except UsageError as exc:
        sys.stderr.write(f"qcow2lint: error: {exc}\n")
        sys.exit(2)
    if invocation.action == "version":
        from qcow2lint import __version__

        sys.stdout.write(f"qcow2lint {__version__}\n")
        return
    from qcow2lint.cli import main as cli_main

    cli_main(invocation)
