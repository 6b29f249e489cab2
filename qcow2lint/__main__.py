"""``python -m qcow2lint``."""

from qcow2lint.cli import main

main()
