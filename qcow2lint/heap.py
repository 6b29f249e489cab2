"""Keep freed memory for reuse: the L2 pass makes a few arrays of a few MiB
per batch of L2 tables, hundreds of batches per large image.

glibc's malloc serves blocks that large with fresh mmap()s and returns them
to the kernel when freed, so every temporary of every batch page-faults in
fresh zeroed pages: on a 1 TiB image that was 70,000 page faults and a third
of the check's time.  Raising the mmap and trim thresholds above the batch
size makes freed blocks stay in the heap and be reused; peak memory does not
change (the same blocks are reused, not added).

Only the console entry point calls this: it changes how the whole process
allocates, which is not for a library to decide for its host program.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt() parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Above every temporary of one L2 batch (reader.L2_BATCH_BYTES is 4 MiB;
#: the rebuilt refcounts of a large image are bigger and still get mmap()).
_MMAP_THRESHOLD = 32 << 20
_TRIM_THRESHOLD = 64 << 20


def reuse_freed_memory() -> bool:
    """Ask glibc to keep freed blocks of up to 32 MiB for reuse; False
    (nothing changed) on a C library without ``mallopt``."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
