"""Progress bars shown only on an interactive terminal.

``progress(iterable, total, description)`` wraps an iterable with a bar when stderr is a TTY,
progress is enabled and a bar renderer is installed; otherwise it returns the iterable untouched,
so logs and CI output stay clean. The analyses call it; the bar itself (rich) is a renderer,
:func:`imbalance_cli.report.progress.rich_bar`, which the CLI installs with :func:`set_bar`
(``--quiet`` turns bars off). This module imports nothing heavy, so every layer may use it.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")

_ENABLED = True
_BAR: Optional[Callable[[Iterable, Optional[int], str], Iterator]] = None
_COUNTER: Optional[Callable[[int, str, str], Any]] = None


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
    """Iterate ``iterable``, showing a progress bar on a terminal only."""
    if not enabled():
        return iterable
    return _BAR(iterable, total, description)


def set_counter(factory: Optional[Callable[[int, str, str], Any]]) -> None:
    """Install the function that draws a counting bar: ``factory(total, description, unit)`` returning a context
    manager with ``advance(n)`` and ``update(completed)`` (``unit`` is ``"items"`` or ``"bytes"``)."""
    global _COUNTER
    _COUNTER = factory


class _NoCounter:
    def __enter__(self) -> "_NoCounter":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def advance(self, n: int) -> None:
        """Nothing to draw."""

    def update(self, completed: int) -> None:
        """Nothing to draw."""


def counter(total: int | None, description: str, unit: str = "items") -> Any:
    """A bar counting up to ``total`` (``advance(n)``, ``update(completed)``) on a terminal; a no-op otherwise."""
    if not total or _COUNTER is None or not enabled():
        return _NoCounter()
    return _COUNTER(int(total), description, unit)
