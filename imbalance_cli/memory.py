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
again), so it is not done. Numbers: README, "Benchmarks".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["RELEASE_EVERY", "release_free_memory"]

#: Chunks decoded between two calls of :func:`release_free_memory` in the streaming loader.
RELEASE_EVERY = 32
_LIBC: list = []


def _glibc():
    if not _LIBC:
        lib = None
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                lib.malloc_trim  # noqa: B018 - exists in glibc
            except (OSError, AttributeError):
                lib = None
        _LIBC.append(lib)
    return _LIBC[0]


def release_free_memory() -> bool:
    """Give the heap's free pages back to the system (glibc ``malloc_trim(0)``); ``True`` when some were."""
    lib = _glibc()
    return bool(lib is not None and lib.malloc_trim(0) == 1)
