"""User-facing errors.

Every problem a user can act on (bad file, bad record, bad option) is raised as an
:class:`InputError`. The CLI prints its one-line message and exits with code 2, with
no traceback. Library users catch it like any other exception.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: a malformed file, a missing key, an undefined id, a bad option.

    Parameters
    ----------
    message:
        What was wrong and, where possible, what to do about it.
    path:
        The file concerned, if any.
    record:
        Where in the file (e.g. ``"annotations[17] (id 4021)"`` or ``"line 12"``).
    """

    exit_code = 2

    def __init__(self, message: str, path: str | None = None, record: str | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.record = record
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The error as one line: ``file: record: message``."""
        parts = [p for p in (self.path, self.record) if p]
        where = ": ".join(parts)
        text = f"{where}: {self.message}" if where else self.message
        return " ".join(text.split())  # never more than one line


class FindingsError(Exception):
    """Raised by commands (e.g. ``imbalance check``) whose findings reach the fail level: exit code 1."""

    exit_code = 1


def did_you_mean(name: object, choices) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``choices`` to ``name`` (any case), or ``""``."""
    import difflib

    choices = [str(c) for c in choices]
    close = difflib.get_close_matches(str(name).strip().lower(), [c.lower() for c in choices], n=1, cutoff=0.6)
    if not close:
        return ""
    return f" (did you mean {next(c for c in choices if c.lower() == close[0])!r}?)"
