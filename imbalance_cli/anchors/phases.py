"""Where the anchor pass spends its time, by phase: off unless a benchmark turns it on.

``benchmarks/anchor_floor.py`` calls :func:`enable`, runs the pass in one process and reads
:data:`TIMES` (CPU seconds of this process per phase: on a shared machine, wall time also counts the
other processes' turns). The code marks phase changes with :func:`switch`, which closes
the current phase and opens another (nesting is a switch and a switch back), so every second
between :func:`enable` and :func:`read` lands in exactly one phase. When off, :func:`switch` is
one dictionary-free check.
"""

from __future__ import annotations

import time

#: The phases, in the order a report lists them.
PHASES = ("set-up", "enumeration", "iou", "labelling", "accumulators", "histograms", "transfer")
TIMES: dict | None = None
#: The phase open now and the process time it opened at.
_OPEN: str | None = None
_SINCE = 0.0


def enable(start: str = "set-up") -> None:
    """Start accounting (clearing any earlier times); ``start`` is the phase open now."""
    global TIMES, _OPEN, _SINCE
    TIMES = dict.fromkeys(PHASES, 0.0)
    _OPEN, _SINCE = start, time.process_time()


def switch(phase: str | None) -> str | None:
    """Close the open phase and open ``phase``; returns the phase that was open (to switch back to)."""
    global _OPEN, _SINCE
    prev = _OPEN
    if TIMES is None or phase == prev or phase is None:
        return prev
    now = time.process_time()
    TIMES[prev] = TIMES.get(prev, 0.0) + now - _SINCE
    _OPEN, _SINCE = phase, now
    return prev


def read() -> dict:
    """Seconds per phase so far (the open phase included), and stop accounting."""
    global TIMES, _OPEN
    if TIMES is None:
        return {}
    switch("__end__")
    out = {k: v for k, v in TIMES.items() if k != "__end__"}
    TIMES = None
    _OPEN = None
    return out
