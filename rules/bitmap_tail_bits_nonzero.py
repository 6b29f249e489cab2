"""Bits past the end of a bitmap are set in its last data cluster.

A bitmap has ceil(len / granularity) bits (len: the virtual size rounded
down to 512-byte sectors), stored LSB first: bit n is bit n % 8 of byte n /
8 of the serialized bitmap (verified with QEMU 7.2).  The rest of the data
cluster that holds the last bit is unused and must be zero (spec, "Bitmap
table").  One finding per bitmap, at the first non-zero byte of the tail.

QEMU: silent; it never looks at the tail bits.  Repair: `qemu-img bitmap
--clear IMG NAME` rewrites the bitmap (its dirty bits are lost; tested with
QEMU 7.2), or remove and recreate it (`qemu-img bitmap --remove` / `--add`).
"""

import numpy as np

from qcow2lint import spec
from qcow2lint.findings import Problem
from qcow2lint.records import BitmapTable
from qcow2lint.rulekit import bitmap_of

NAME = "bitmap-tail-bits-nonzero"
CODE = "Q1433"
SEVERITY = "warning"
SCOPE = BitmapTable


def check(table, ctx):
    """Flag non-zero bits past the bitmap's last bit in its last data cluster."""
    if table.tail_cluster is None or not bitmap_of(ctx, table).inside_directory:
        return
    used = table.bit_count - table.tail_index * ctx.cluster_size * 8  # bits of the bitmap in this cluster
    first_byte, first_bit = divmod(used, 8)
    tail = np.frombuffer(table.tail_cluster, np.uint8)[first_byte:].copy()
    if len(tail):
        tail[0] &= 0xFF << first_bit & 0xFF  # the bitmap's own bits in the shared byte
    nonzero = np.flatnonzero(tail)
    if len(nonzero):
        data = int(table.entries[table.tail_index]) & spec.BME_TABLE_ENTRY_OFFSET_MASK
        byte = first_byte + int(nonzero[0])
        shared = f", whose bits 0..{first_bit - 1} are the bitmap's" if byte == first_byte and first_bit else ""
        yield Problem(
            data + byte,
            f"{table.path}[{table.tail_index}].data",
            f"bitmap has {table.bit_count} bits, but its last data cluster {data:#x} has bits set past them: "
            f"first in byte {byte} ({table.tail_cluster[byte]:#04x}{shared}); "
            f"{len(nonzero)} tail {'byte is' if len(nonzero) == 1 else 'bytes are'} non-zero",
        )
