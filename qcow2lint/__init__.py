"""qcow2lint: a linter for QEMU qcow2 disk images."""

__version__ = "0.1.0"
