"""``python -m qcow2lint``: the same as the ``qcow2lint`` command."""

from qcow2lint.entry import main

main()
