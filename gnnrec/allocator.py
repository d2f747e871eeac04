"""Keep freed memory in the process (glibc malloc): CPU training reallocates the same large tensors every step.

glibc serves large blocks with fresh mmap'd pages and returns them to the OS when freed, so each step's new
(batch x items) or (nodes x dim) tensor page-faults again; PyTorch's CPU allocator has no cache of its own. On
this project's 2-core VM a fresh 50 MB tensor costs about 110 ms of page faults. With mmap off and trimming
raised, freed blocks stay in the heap and the next step reuses them (LightGCN TikTok epoch 0.71 -> 0.58 s,
benchmarks/perf.md). The cost: the process's resident memory stays near its peak instead of shrinking.
Set by ``train.keep_freed_memory`` (default on) when a run starts, never at import."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
DEFAULT_MMAP_MAX, DEFAULT_TRIM = 65536, 128 * 1024
KEEP_TRIM = 2**31 - 1  # the largest value mallopt takes (an int): keep up to 2 GB free at the heap's top


def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory(enabled: bool = True) -> bool:
    """Turn the setting on (or back to glibc's defaults); False where the C library is not glibc (no effect)."""
    libc = _libc()
    if libc is None:
        log.debug("not glibc: freed memory is handled by the platform's allocator")
        return False
    mmap_max, trim = (0, KEEP_TRIM) if enabled else (DEFAULT_MMAP_MAX, DEFAULT_TRIM)
    return bool(libc.mallopt(M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim))
