"""A progress bar over bytes read, shown only on a terminal (see :mod:`imbalance_cli.progress`)."""

from __future__ import annotations


class ByteProgress:
    """Context manager: ``update(position)`` moves a bar over ``total`` bytes; a no-op off a terminal."""

    def __init__(self, total: int | None, description: str):
        from imbalance_cli import progress

        self._on = bool(total) and progress.enabled()
        self._total = total
        self._description = description
        self._bar = None
        self._task = None

    def __enter__(self) -> "ByteProgress":
        if self._on:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task(self._description, total=self._total)
        return self

    def update(self, position: int) -> None:
        """Set the number of bytes read so far."""
        if self._bar is not None:
            self._bar.update(self._task, completed=position)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
