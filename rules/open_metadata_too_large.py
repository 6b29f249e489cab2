"""The metadata QEMU reads and holds to open the image is above the maximum.

When QEMU opens a qcow2 image it reads the whole active L1 table
(l1_size * 8 bytes) and the whole refcount table (refcount_table_clusters
* cluster_size bytes), the snapshot table, and the bitmap directory with
every bitmap's table, and it loads every persistent dirty bitmap into
memory (one bit per granule of the virtual disk); each snapshot's L1
table (l1_size * 8 bytes) is read when the image is checked, when a
snapshot is used, and by the inactive-L1 overlap checks (spec, "Header"; spec, "Snapshots"; spec, "Bitmaps").  QEMU's own caps (32 MiB per L1 table, 8 MiB of
refcount table, 65536 snapshots, 64 MiB of bitmap directory) still let a
file of a few megabytes make every open cost hundreds of megabytes of
reads and memory: the amplification behind CVE-2015-5162, where OpenStack
ran `qemu-img` on uploaded images without limits and a crafted image
exhausted the host's memory.

The rule adds these sizes from the header and the table headers alone; it
reads no table to do it.  Off by default (qemu-img makes such tables on
request); the `untrusted` preset enables it at error, `pedantic` at
warning.  Option `max-open-metadata` (bytes, at least 1) is 16 MiB
(16777216) by default, some 500 times what a 64 GiB image with 64 KiB
clusters needs (an L1 of 1 KiB and a refcount table of 64 KiB).  There is
no "no limit" value: to judge no size, leave the rule off.
QEMU: opens the image if each table is within its own cap.
Repair: `qemu-img convert` writes tables sized for the data; delete unused
snapshots (`qemu-img snapshot -d`) and bitmaps (`qemu-img bitmap --remove`).
"""

from qcow2lint.findings import Problem
from qcow2lint.records import Image

NAME = "open-metadata-too-large"
CODE = "Q0590"
SEVERITY = "warning"
SCOPE = Image
DEFAULT_ENABLED = False
OPTIONS = {"max-open-metadata": 16_777_216}  # 16 MiB
OPTION_CONSTRAINTS = {"max-open-metadata": {"minimum": 1}}


def _parts(image):
    header = image.header
    parts = {
        "active L1 table": header.l1_size * 8,
        "refcount table": header.refcount_table_clusters * header.cluster_size,
    }
    if image.snapshots is not None:
        parts["snapshot table"] = image.snapshots.too_big_length or sum(entry.size for entry in image.snapshots.entries)
        parts["snapshot L1 tables"] = sum(entry.l1_size * 8 for entry in image.snapshots.entries)
    if image.bitmaps is not None:
        parts["bitmap directory"] = image.bitmaps.bitmap_directory_size
        entries = [entry for entry in image.bitmap_directory if entry.inside_directory]
        parts["bitmap tables"] = sum(entry.bitmap_table_size * 8 for entry in entries)
        parts["dirty bitmaps in memory"] = sum(
            -(-header.size // (8 << entry.granularity_bits)) for entry in entries if entry.granularity_bits < 64
        )
    return {name: size for name, size in parts.items() if size}


def check(image, ctx):
    """Flag open-time metadata above max-open-metadata."""
    limit = ctx.options["max-open-metadata"]
    parts = _parts(image)
    total = sum(parts.values())
    if total > limit:
        detail = ", ".join(f"{name} {size}" for name, size in sorted(parts.items(), key=lambda p: -p[1]))
        yield Problem(
            0,
            "image",
            f"opening the image reads or holds {total} bytes of metadata ({detail}), above max-open-metadata "
            f"{limit} bytes",
        )
