"""imbalance_cli.memory: freed chunk-sized blocks that glibc keeps on its heap are handed back to the system."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator (Linux only)")

_PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from imbalance_cli import memory

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

    # a large block freed first: glibc's dynamic threshold rises to its size (the loader's pattern),
    # so the chunk-sized blocks below come from the heap
    big = np.ones(24 << 17)  # 24 MiB
    del big
    before = rss_mib()
    blocks = [np.ones(40_000) for _ in range(1500)]  # 1500 blocks of 312 KiB = 458 MiB, like decoded chunks
    keep = blocks[-1].copy()  # a later block survives, pinning the top of the heap
    del blocks
    kept = rss_mib() - before
    released = memory.release_free_memory()
    print(kept, rss_mib() - before, released)
""")


@pytest.mark.slow
def test_release_free_memory_returns_freed_heap_blocks():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    kept, after, released = out.split()
    assert float(kept) > 200  # glibc keeps the freed blocks resident ...
    assert float(after) < 40  # ... until they are handed back
    assert released == "True"


_KEEP_PROBE = textwrap.dedent("""
    import sys
    import numpy as np
    from imbalance_cli import memory

    def rss_mib():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024

    ok = memory.keep_freed_memory() if sys.argv[1] == "keep" else None
    before = rss_mib()
    blocks = [np.ones(640_000) for _ in range(60)]  # 60 blocks of 5 MB, like a worker's columns
    del blocks  # all freed, the top of the heap included
    print(ok, rss_mib() - before)
""")


@pytest.mark.slow
def test_keep_freed_memory_keeps_freed_blocks_for_reuse():
    # by default glibc maps 5 MB blocks afresh (or trims the heap top when they are freed), so their pages
    # go back to the system; after keep_freed_memory they stay on the heap for the next chunk to reuse
    def run(mode):
        out = subprocess.run(
            [sys.executable, "-c", _KEEP_PROBE, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return out[0], float(out[1])

    ok, kept = run("keep")
    default, given_back = run("default")
    assert ok == "True"
    assert kept > 250  # ~300 MB stay resident, ready for reuse
    assert given_back < 50
