"""Progress bars shown only on an interactive terminal.

``progress(iterable, total, description)`` wraps an iterable with a rich progress bar when
stderr is a TTY and progress is enabled; otherwise it returns the iterable untouched, so
logs and CI output stay clean. ``--quiet`` on the CLI disables it globally.
"""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

_ENABLED = True


def set_enabled(enabled: bool) -> None:
    """Globally enable or disable progress bars (the CLI's ``--quiet`` turns them off)."""
    global _ENABLED
    _ENABLED = bool(enabled)


def enabled() -> bool:
    """True when bars are enabled and stderr is an interactive terminal."""
    return _ENABLED and sys.stderr.isatty()


def progress(iterable: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T] | Iterable[T]:
    """Iterate ``iterable``, showing a progress bar on a terminal only."""
    if not enabled():
        return iterable
    return _bar(iterable, total, description)


def _bar(iterable: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)
