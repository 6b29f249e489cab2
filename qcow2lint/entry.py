"""The console entry point: answers ``qcow2lint --version`` before the CLI
(typer, the configuration, the registry) is imported, so that it costs
about an interpreter start (issue 13); everything else goes to
:func:`qcow2lint.cli.main`."""

from __future__ import annotations

import sys


def main() -> None:
    """``qcow2lint``: ``--version`` at once, every other command through the CLI."""
    if sys.argv[1:] == ["--version"]:
        from qcow2lint import __version__

        sys.stdout.write(f"qcow2lint {__version__}\n")
        return
    from qcow2lint.cli import main as cli_main

    cli_main()
