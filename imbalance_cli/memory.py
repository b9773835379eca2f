"""Handing freed heap memory back to the system while large files are loaded (glibc only; a no-op elsewhere).

Loading a large file makes and frees hundreds of thousands of mid-sized blocks (each decoded
chunk's text and columns, the pickled results of worker processes, the scanner's block
temporaries). glibc serves blocks below its ``mmap`` threshold from the heap and raises that
threshold each time a larger mapped block is freed (up to 32 MiB), so most of these blocks end up
on heaps that are rarely given back: the process holds freed memory as resident and its peak
grows with it. :func:`release_free_memory` (``malloc_trim(0)``, which also returns free pages in
the middle of the heap) is called by the streaming loader every :data:`RELEASE_EVERY` chunks, before
assembling the columns and after loading.

Fixing the ``mmap`` threshold low instead (``mallopt``) bounded the peak as well but cost 3-5 s
of system time on the Objects365-tenth file (every scanner temporary mapped and zero-filled
again), so it is not done in the loading process. Worker processes, which live for one load, do the
opposite (:func:`keep_freed_memory`): they keep what they free for the next chunk. Numbers: README,
"Benchmarks", and docs/performance.md.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["RELEASE_EVERY", "keep_freed_memory", "release_free_memory"]

#: Chunks decoded between two calls of :func:`release_free_memory` in the streaming loader.
RELEASE_EVERY = 32
#: glibc once looked up: None before the first look-up, False where it is not available.
_LIBC = None


def _glibc():
    global _LIBC
    if _LIBC is None:
        _LIBC = False
        if sys.platform.startswith("linux"):
            try:
                # glibc's soname first: ``find_library`` runs ``ldconfig -p`` in a subprocess (a fork and exec)
                try:
                    lib = ctypes.CDLL("libc.so.6")
                except OSError:
                    lib = ctypes.CDLL(ctypes.util.find_library("c"))
                lib.malloc_trim  # noqa: B018 - exists in glibc
                _LIBC = lib
            except (OSError, AttributeError):
                pass
    return _LIBC or None


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``); ``True`` when some were."""
    lib = _glibc()
    return bool(lib is not None and lib.malloc_trim(0) == 1)


#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Keep freed heap memory for reuse in this process (glibc; ``True`` when set): for short-lived worker processes.

    A decoding worker makes and frees the same few blocks for every chunk (its columns and the
    temporaries that build them: ~5 MB each). glibc maps blocks of that size afresh, or trims them from the
    top of the heap when freed, so every chunk would pay for new zero-filled pages (a page fault per 4 KiB,
    costly in a virtual machine). Serving blocks up to 32 MiB (glibc's largest threshold) from the heap
    and never trimming it automatically lets the next chunk reuse them; the worker's peak is one
    chunk's working set, and the process ends with the load (on the COCO-train-size file this saves each
    worker about 10 k of its 108 k page faults, measured).
    """
    lib = _glibc()
    if lib is None or not hasattr(lib, "mallopt"):
        return False
    return bool(lib.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024) and lib.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
