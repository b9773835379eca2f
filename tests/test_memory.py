"""imbalance_cli.memory: with the fixed mmap threshold, freed chunk-sized blocks leave the process."""

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

    tuned = memory.tune_allocator() if sys.argv[1] == "tuned" else None
    # a large block freed first: glibc's dynamic threshold then rises to its size (the loader's pattern)
    big = np.ones(24 << 17)  # 24 MiB
    del big
    before = rss_mib()
    blocks = [np.ones(40_000) for _ in range(1500)]  # 1500 blocks of 312 KiB = 458 MiB, like decoded chunks
    keep = blocks[-1].copy()  # a later block survives, pinning the heap top in the untuned case
    del blocks
    print(tuned, rss_mib() - before)
""")


def _grown(mode: str) -> tuple[str, float]:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True).stdout
    tuned, grown = out.split()
    return tuned, float(grown)


def test_tuned_allocator_returns_freed_blocks_to_the_system():
    tuned, grown = _grown("tuned")
    assert tuned == "True"
    assert grown < 40  # MiB: the 458 MiB of freed blocks are gone


def test_untuned_allocator_keeps_them_which_is_what_tuning_fixes():
    _, grown = _grown("default")
    assert grown > 200  # glibc's default keeps the freed blocks on the heap


def test_release_free_memory_is_safe_to_call():
    from imbalance_cli import memory

    assert memory.release_free_memory() in (True, False)
