"""``Choice``: the base of every Enum a command-line option takes (``--device``, ``--loss``, ``--format``...)."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A string Enum whose ``str()`` is its value (``str(Device.cpu) == "cpu"``).

    A plain ``(str, Enum)`` prints as ``Device.cpu`` on Python < 3.12 (its format changed in 3.11, its
    ``str`` did not), and Typer before 0.29 maps a parsed option back to its member by ``str(value)``:
    with the plain mix-in every such option arrived as ``None``. Build functional Enums with
    ``Choice("Name", {...})``.
    """

    def __str__(self) -> str:
        return str(self.value)
