"""Rebuild examples/demo.qcow2: a small real image with a few planted defects.

Needs qemu-img and qemu-io (Debian: qemu-utils).  Run from the repo root:
``python examples/make_demo.py``.  The defects are planted by patching
bytes at offsets that this script finds in the image itself.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

DEMO = Path(__file__).with_name("demo.qcow2")
CLUSTER = 4096


def main() -> None:
    """Create the image with qemu-img, then plant the defects."""
    DEMO.unlink(missing_ok=True)
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-o", f"cluster_size={CLUSTER}", str(DEMO), "1M"], check=True
    )
    subprocess.run(["qemu-io", "-c", "write -P 0x5a 0 8k", str(DEMO)], check=True, capture_output=True)
    subprocess.run(["qemu-img", "bitmap", "--add", str(DEMO), "nightly"], check=True)
    data = bytearray(DEMO.read_bytes())
    # Header padding (bytes 105..111) must be zero: warning header-padding-nonzero.
    data[106] = 0x01
    # An unknown autoclear bit: warning autoclear-unknown-bits.
    struct.pack_into(">Q", data, 88, struct.unpack_from(">Q", data, 88)[0] | 1 << 9)
    # A reserved bit in the first L2 entry: error l2-reserved-bits.
    l1_offset = struct.unpack_from(">Q", data, 40)[0]
    l2_offset = struct.unpack_from(">Q", data, l1_offset)[0] & 0x00FFFFFFFFFFFE00
    struct.pack_into(">Q", data, l2_offset, struct.unpack_from(">Q", data, l2_offset)[0] | 0x2)
    DEMO.write_bytes(data)


if __name__ == "__main__":
    main()
