"""Progress bars shown only on an interactive terminal.

``progress(iterable, total, description)`` wraps an iterable with a bar when stderr is a TTY,
progress is enabled and a bar renderer is installed; otherwise it returns the iterable untouched,
so logs and CI output stay clean. The analyses call it; the bar itself (rich) is a renderer,
:func:`imbalance_cli.report.progress.rich_bar`, which the CLI installs with :func:`set_bar`
(``--quiet`` turns bars off). This module imports nothing heavy, so every layer may use it.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")

_ENABLED = True
_BAR: Optional[Callable[[Iterable, Optional[int], str], Iterator]] = None
_COUNTER: Optional[Callable[[int, str, str], Any]] = None
_PHASE: Optional[Callable[[str], None]] = None


def set_phase_printer(printer: Optional[Callable[[str], None]]) -> None:
    """Install the function that prints one line per phase when stderr is not a terminal (the CLI installs one;
    library callers stay silent). ``--quiet`` turns it off with the bars (:func:`set_enabled`)."""
    global _PHASE
    _PHASE = printer


def phase(text: str) -> None:
    """Announce a phase of long work: one line on stderr when progress is enabled, stderr is not a terminal
    (a log, CI) and a printer is installed, as pip and Ultralytics log their steps; nothing on a terminal,
    where the bars show it."""
    if _logging_phases():
        _PHASE(text)


def _logging_phases() -> bool:
    return _ENABLED and _PHASE is not None and not sys.stderr.isatty()


#: A bar's phase line is printed off a terminal only when its phase is still running after this many seconds:
#: long work says what it is doing, quick work (and a one-line error right after it) stays quiet. The
#: environment variable :data:`PHASE_DELAY_ENV` sets another delay (seconds >= 0; a large one: no phase lines).
PHASE_DELAY = 1.0
PHASE_DELAY_ENV = "IMBALANCE_PHASE_DELAY"


def phase_delay() -> float:
    """The phase-line delay in seconds: ``$IMBALANCE_PHASE_DELAY`` when set, else :data:`PHASE_DELAY`.

    Raises ``ValueError`` (one line) when the variable is not a finite number >= 0.
    """
    raw = os.environ.get(PHASE_DELAY_ENV, "").strip()
    if not raw:
        return PHASE_DELAY
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{PHASE_DELAY_ENV} must be a number of seconds >= 0, got {raw!r}")
    return value


class _DelayedPhase:
    """Prints ``text`` (one phase line) after :data:`PHASE_DELAY` seconds unless closed first."""

    def __init__(self, text: str):
        import threading

        self.timer = threading.Timer(phase_delay(), _PHASE, (text,))
        self.timer.daemon = True
        self.timer.start()

    def close(self) -> None:
        """The phase is over: no line if it has not been printed yet."""
        self.timer.cancel()


def _phased(iterable: Iterable[T], text: str) -> Iterator[T]:
    ph = _DelayedPhase(text)
    try:
        yield from iterable
    finally:
        ph.close()


def set_enabled(enabled: bool) -> None:
    """Globally enable or disable progress bars (the CLI's ``--quiet`` turns them off)."""
    global _ENABLED
    _ENABLED = bool(enabled)


def set_bar(bar: Optional[Callable[[Iterable, Optional[int], str], Iterator]]) -> None:
    """Install the function that draws a bar: ``bar(iterable, total, description)`` yielding the items."""
    global _BAR
    _BAR = bar


def enabled() -> bool:
    """True when bars are enabled, a bar renderer is installed and stderr is an interactive terminal."""
    return _ENABLED and _BAR is not None and sys.stderr.isatty()


def progress(iterable: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T] | Iterable[T]:
    """Iterate ``iterable``, showing a progress bar on a terminal only (off a terminal: one :func:`phase` line)."""
    if not enabled():
        if description and _logging_phases():
            return _phased(iterable, description + (f" ({total:,})" if total else ""))
        return iterable
    return _BAR(iterable, total, description)


def set_counter(factory: Optional[Callable[[int, str, str], Any]]) -> None:
    """Install the function that draws a counting bar: ``factory(total, description, unit)`` returning a context
    manager with ``advance(n)`` and ``update(completed)`` (``unit`` is ``"items"`` or ``"bytes"``)."""
    global _COUNTER
    _COUNTER = factory


class _NoCounter:
    def __init__(self, phase_text: str | None = None):
        self.phase_text, self._phase = phase_text, None

    def __enter__(self) -> "_NoCounter":
        if self.phase_text:
            self._phase = _DelayedPhase(self.phase_text)
        return self

    def __exit__(self, *exc) -> bool:
        if self._phase is not None:
            self._phase.close()
        return False

    def advance(self, n: int) -> None:
        """Nothing to draw."""

    def update(self, completed: int) -> None:
        """Nothing to draw."""


def counter(total: int | None, description: str, unit: str = "items") -> Any:
    """A bar counting up to ``total`` (``advance(n)``, ``update(completed)``) on a terminal; a no-op otherwise
    (off a terminal: one :func:`phase` line)."""
    if not total or _COUNTER is None or not enabled():
        if description and _logging_phases():
            size = "" if not total else (f" ({total / 1e6:,.1f} MB)" if unit == "bytes" else f" ({total:,})")
            return _NoCounter(description + size)
        return _NoCounter()
    return _COUNTER(int(total), description, unit)
