"""The terminal progress bar (rich), installed by the CLI into :mod:`imbalance_cli.progress`."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def rich_bar(iterable: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Yield the items of ``iterable`` while drawing a transient rich bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)


class RichCounter:
    """A transient rich bar on stderr counting items or bytes (installed by the CLI, see :func:`progress.counter`)."""

    def __init__(self, total: int, description: str, unit: str = "items"):
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        count = DownloadColumn() if unit == "bytes" else MofNCompleteColumn()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            count,
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.total, self.description, self.task = total, description, None

    def __enter__(self) -> "RichCounter":
        self.bar.__enter__()
        self.task = self.bar.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int) -> None:
        """Count ``n`` more."""
        self.bar.advance(self.task, n)

    def update(self, completed: int) -> None:
        """Set the count reached."""
        self.bar.update(self.task, completed=completed)

    def __exit__(self, *exc) -> bool:
        self.bar.__exit__(*exc)
        return False
