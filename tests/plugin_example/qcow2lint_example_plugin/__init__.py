"""An example third-party qcow2lint plugin."""
