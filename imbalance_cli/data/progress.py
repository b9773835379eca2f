"""A progress bar over bytes read, shown only on a terminal (see :mod:`imbalance_cli.progress`)."""

from __future__ import annotations

from imbalance_cli import progress


class ByteProgress:
    """Context manager: ``update(position)`` moves a bar over ``total`` bytes; a no-op off a terminal."""

    def __init__(self, total: int | None, description: str):
        self._bar = progress.counter(total, description, unit="bytes")

    def __enter__(self) -> "ByteProgress":
        self._bar.__enter__()
        return self

    def update(self, position: int) -> None:
        """Set the number of bytes read so far."""
        self._bar.update(position)

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)
