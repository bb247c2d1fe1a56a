"""glibc malloc settings for the aggregator process.

glibc serves an allocation above its mmap threshold (128 KiB at start) with its own mmap,
given back to the system when freed; but each time such a block is freed it raises the
threshold to that block's size (up to 32 MiB). The aggregator's large buffers are Kafka fetch
responses (up to 8 MiB per partition) and the COPY bodies of a batch: after the first ones
were freed, later ones came from the heap, whose freed middle glibc cannot give back, so
under a consumer lag the resident size only ever went up (273 → 337 MiB, +6.7 MiB a minute,
through 10 minutes of `bench.run memory`). With the threshold fixed, large buffers stay in
mmap and the resident size follows what is in use.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own starting value, now kept


def fix_mmap_threshold() -> bool:
    """Keep glibc's mmap threshold at 128 KiB (call once, at start); False where malloc is not glibc's."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    # Setting it also turns off glibc's dynamic adjustment (mallopt(3)). musl's mallopt does
    # nothing and answers 0.
    done: bool = mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD_BYTES)) == 1
    if not done:
        log.info("malloc is not glibc's: its mmap threshold is left as it is")
    return done
