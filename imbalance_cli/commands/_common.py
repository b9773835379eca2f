"""Helpers shared by the command modules: error handling, quiet flag, output choice."""

from __future__ import annotations

import functools
import sys
from typing import Callable

import typer

from imbalance_cli.errors import FindingsError, InputError


def handle_errors(fn: Callable) -> Callable:
    """Decorate a command: an :class:`InputError` becomes one line on stderr and exit code 2.

    Also maps ``FileNotFoundError``/``IsADirectoryError``/``PermissionError`` on user paths to
    the same one-line form, and ``FindingsError`` to exit code 1. Anything else is a bug and
    keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            typer.echo(f"error: {e.one_line()}", err=True)
            raise typer.Exit(2) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            name = getattr(e, "filename", None) or ""
            typer.echo(f"error: {name}: {e.strerror or e}", err=True)
            raise typer.Exit(2) from None
        except FindingsError:
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def set_quiet(quiet: bool) -> None:
    """Apply ``--quiet``: no progress bars."""
    from imbalance_cli import progress

    progress.set_enabled(not quiet)


def echo_json(text: str) -> None:
    """Print JSON to stdout (and nothing else there)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
