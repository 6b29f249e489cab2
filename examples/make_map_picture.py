"""Rewrite docs/map-demo.png: the picture ``qcow2lint map`` draws of
examples/demo.qcow2 (a test checks that it is fresh).

Run from the repo root: ``python examples/make_map_picture.py``; it runs
``qcow2lint map examples/demo.qcow2 -o docs/map-demo.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from qcow2lint.filemap import run_map

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Draw the demo image into the docs."""
    return run_map(str(ROOT / "examples" / "demo.qcow2"), str(ROOT / "docs" / "map-demo.png"), None)


if __name__ == "__main__":
    sys.exit(main())
