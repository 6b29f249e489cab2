"""A compressed cluster does not decompress to exactly one cluster.

The payload of a compressed cluster is a raw deflate stream (compression
type 0, zlib) or zstd frames (type 1) that decompress to cluster_size bytes
(spec, "Cluster mapping", Compressed Clusters Descriptor, and "Additional
fields (version 3 and higher)", compression_type).  This rule reads and
decompresses every payload, so it runs only with `qcow2lint check --deep`.

QEMU: `qemu-img check` never decompresses; the guest read of the cluster
fails with EIO.  Repair: none for the lost cluster; `qemu-img convert`
copies the rest once the entry is dropped.
"""

import io
import zlib

from qcow2lint import spec
from qcow2lint.records import CompressedCluster
from qcow2lint.rulekit import compressed_entry_problem, each_hit

NAME = "compressed-undecompressible"
CODE = "Q0906"
SEVERITY = "error"
SCOPE = CompressedCluster
STRICTER_THAN_QEMU = (
    "The cluster's data is lost: a guest read of it fails with an I/O error. `qemu-img "
    "check` never decompresses a cluster."
)


def _inflate(cluster: CompressedCluster) -> bytes:
    if cluster.compression_type == spec.COMPRESSION_ZSTD:
        import zstandard  # only --deep needs it

        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(cluster.data), read_across_frames=True)
        return reader.read(cluster.cluster_size)
    return zlib.decompressobj(-15).decompress(cluster.data, cluster.cluster_size)


def _problem(cluster: CompressedCluster) -> str | None:
    try:
        produced = len(_inflate(cluster))
        return None if produced == cluster.cluster_size else f"gives {produced} bytes, not {cluster.cluster_size}"
    except Exception as exc:  # zlib.error, zstandard.ZstdError: the stream is broken
        return f"fails: {exc}"


def check(cluster, ctx):
    """Decompress the payload and compare its length with the cluster size
    (once per distinct payload of the image), then report it for every L2
    entry that names it."""
    name = "zstd" if cluster.compression_type == spec.COMPRESSION_ZSTD else "deflate"
    problem = cluster.once(NAME, lambda: _problem(cluster))
    if problem:
        message = f"{name} payload at {cluster.host_offset:#x} ({cluster.length} bytes) {problem}"
        yield from each_hit(ctx, cluster.entries(), lambda index: compressed_entry_problem(cluster, index, message))
