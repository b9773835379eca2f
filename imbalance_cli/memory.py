"""Keeping the process's resident memory close to what its arrays need (glibc only; a no-op elsewhere).

Loading a large file makes and frees hundreds of thousands of mid-sized blocks (each decoded
chunk's columns, the pickled results of worker processes). glibc serves blocks below its
``mmap`` threshold from the heap and, by default, raises that threshold each time a larger
mapped block is freed (up to 32 MiB), so most of these blocks end up on a heap that is rarely
given back: the process holds freed memory as resident. Two calls bound that:

* :func:`tune_allocator` fixes the threshold at :data:`MMAP_THRESHOLD` (256 KiB), so blocks of a
  chunk's size are mapped and returned to the system when freed (``mallopt(M_MMAP_THRESHOLD)``;
  setting it also turns the dynamic adjustment off). The command-line entry point calls it once;
  library users may call it themselves, it changes the allocator of the whole process.
* :func:`release_free_memory` hands the heap's free pages back (``malloc_trim(0)``); the loaders
  call it after assembling a dataset.

Measured with ``benchmarks/load.py`` on the Objects365-tenth file (174 k images, 2.54 M boxes):
peak RSS of a load 469 -> 329 MiB, RSS after it 469 -> 223 MiB, time unchanged (see README).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["MMAP_THRESHOLD", "tune_allocator", "release_free_memory"]

#: Blocks at least this large are mapped (and unmapped when freed) once :func:`tune_allocator` ran.
MMAP_THRESHOLD = 256 * 1024
_M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
_LIBC: list = []


def _glibc():
    if not _LIBC:
        lib = None
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.mallopt, lib.malloc_trim  # noqa: B018 - both exist in glibc, not in musl's older releases
            except (OSError, AttributeError):
                lib = None
        _LIBC.append(lib)
    return _LIBC[0]


def tune_allocator(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's ``mmap`` threshold at ``threshold`` bytes; ``True`` when it took effect."""
    lib = _glibc()
    return bool(lib is not None and lib.mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1)


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``); ``True`` when some were."""
    lib = _glibc()
    return bool(lib is not None and lib.malloc_trim(0) == 1)
