"""Helpers shared by the command modules: error handling, quiet flag, flags and ``-o/--out``, JSON output."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from enum import Enum
from typing import Any, Callable

import typer

from imbalance_cli import dist, progress
from imbalance_cli.errors import FindingsError, InputError
from imbalance_cli.report.progress import RichCounter, rich_bar
from imbalance_cli.report.writer import check_out_dir


def handle_errors(fn: Callable) -> Callable:
    """Decorate a command: an :class:`InputError` becomes one line on stderr and exit code 2.

    Also maps ``FileNotFoundError``/``IsADirectoryError``/``PermissionError`` on user paths to
    the same one-line form, and ``FindingsError`` to exit code 1. Anything else is a bug and
    keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with dist.command_session(kwargs, getattr(fn, "rank_zero_outputs", dist.OUTPUT_ARGUMENTS)) as kwargs:  # under torchrun: process group, rank 0 alone outputs
            return _run(fn, args, kwargs)

    return wrapper


def _run(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Call a command, turning the errors a user can act on into one line and an exit code."""
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


def flag(*names: str, help: str) -> Any:
    """A boolean flag (default off) shown in ``--help`` as a bare flag, without a ``<bool>`` value column."""
    return typer.Option(False, *names, help=help, metavar="")


def out_option(writes: str) -> Any:
    """The ``-o/--out DIR`` option every command shares: a directory, swapped in whole (see the README)."""
    return typer.Option(None, "--out", "-o", help=f"Write {writes} into this directory (created if needed; the "
                        "whole directory is replaced at once, files of yours in it are kept).",
                        metavar="DIR", show_default=False)


def check_out(out: Path | None) -> None:
    """Refuse, before any work, an ``--out`` that exists and is not a directory."""
    if out is not None:
        check_out_dir(out)


def set_quiet(quiet: bool) -> None:
    """Apply ``--quiet`` (no progress bars); otherwise bars are drawn with rich on a terminal."""
    progress.set_bar(rich_bar)
    progress.set_counter(RichCounter)
    progress.set_phase_printer(_phase_line)
    progress.set_enabled(not quiet)


def _phase_line(text: str) -> None:
    """One line per phase on stderr off a terminal (``imbalance: anchors (culled) (79 images)``)."""
    typer.echo(f"imbalance: {text}", err=True)


def echo_json(text: str) -> None:
    """Print JSON to stdout (and nothing else there)."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def wrote(out: Path | None, paths: list, quiet: bool = False) -> None:
    """After the terminal summary: say where the report went (nothing with ``--quiet`` or without ``--out``)."""
    if out is not None and paths and not quiet:
        typer.echo(f"wrote {len(paths)} files to {out}")


def choice_parser(enum: type[Enum], flag: str):
    """A Typer ``parser`` accepting the Enum's values (any case) and refusing others with one line, exit 2."""

    def parse(value):
        if isinstance(value, enum):
            return value
        try:
            return enum(str(value).strip().lower())
        except ValueError:
            names = ", ".join(m.value for m in enum)
            typer.echo(f"error: {flag} must be one of {names}, got {value!r}", err=True)
            raise typer.Exit(2) from None

    return parse


def choice_metavar(enum: type[Enum]) -> str:
    """``[a|b|c]``: how ``--help`` shows an Enum option's choices."""
    return "[" + "|".join(m.value for m in enum) + "]"
