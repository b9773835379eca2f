"""Helpers shared by the command modules: error handling, quiet flag, flags and ``-o/--out``, JSON output."""

from __future__ import annotations

import functools
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Iterable

import typer

from imbalance_cli import dist, progress
from imbalance_cli.errors import FindingsError, InputError
from imbalance_cli.fileio import OutputWarning, os_reason
from imbalance_cli.report.progress import RichCounter, rich_bar
from imbalance_cli.report.writer import check_out_dir


def handle_errors(fn: Callable) -> Callable:
    """Decorate a command: an :class:`InputError` becomes one line on stderr and exit code 2.

    Also maps any other ``OSError`` (a file not found, permissions, a full or read-only disk) to
    the same one-line form, and ``FindingsError`` to exit code 1. Anything else is a bug and
    keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # a bad torchrun setting or a rendezvous timeout is one line too
        return _run(_in_session, (fn, args, kwargs), {})

    return wrapper


def _in_session(fn: Callable, args: tuple, kwargs: dict) -> Any:
    with dist.command_session(
        kwargs, getattr(fn, "rank_zero_outputs", dist.OUTPUT_ARGUMENTS)
    ) as kwargs:  # under torchrun: process group, rank 0 alone outputs
        return _run(fn, args, kwargs)


def _run(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """Call a command, turning the errors a user can act on into one line and an exit code."""
    try:
        with warnings.catch_warnings():  # restores the default display afterwards (library use, tests)
            warnings.showwarning = _one_line_warning(warnings.showwarning)
            return fn(*args, **kwargs)
    except InputError as e:
        typer.echo(f"error: {e.one_line()}", err=True)
        raise typer.Exit(2) from None
    except OSError as e:  # the write paths name the user's path themselves (WriteError); this is the safety net
        name = getattr(e, "filename", None)
        typer.echo(f"error: {f'{name}: ' if name else ''}{os_reason(e)}", err=True)
        raise typer.Exit(2) from None
    except FindingsError:
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def _one_line_warning(show: Callable) -> Callable:
    """``showwarning`` printing an :class:`~imbalance_cli.fileio.OutputWarning` (a skipped cache) as one line."""

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, OutputWarning):
            typer.echo(f"warning: {message}", err=True)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def refuse_inapplicable(why: str, **given: bool) -> None:
    """Refuse, with one line, the options in ``given`` (``"--name": was it given``) that cannot apply ``why``.

    The developers' standard: an option that cannot apply is rejected, never recorded and ignored.
    """
    names = [name for name, was_given in given.items() if was_given]
    if names:
        names = [n if n.startswith("-") else "--" + n.replace("_", "-") for n in names]
        verb = "does" if len(names) == 1 else "do"
        raise InputError(f"{', '.join(names)} {verb} not apply {why}")


def flag(*names: str, help: str) -> Any:
    """A boolean flag (default off) shown in ``--help`` as a bare flag, without a ``<bool>`` value column."""
    return typer.Option(False, *names, help=help, metavar="")


def out_option(writes: str) -> Any:
    """The ``-o/--out DIR`` option every command shares: a directory, swapped in whole (see the README)."""
    return typer.Option(
        None,
        "--out",
        "-o",
        help=f"Write {writes} into this directory (created if needed; the "
        "whole directory is replaced at once, files of yours in it are kept).",
        metavar="DIR",
        show_default=False,
    )


def check_out(out: Path | None, *inputs: Path, own: Iterable[str] | None = None) -> None:
    """Refuse, before any work, an ``--out`` the report cannot replace safely (one line, exit 2).

    Symbolic links are followed; refused: the working directory or a parent of it, the home directory,
    ``/``, an input (or a folder holding one) of ``inputs``, an existing file or a path below one and,
    given the report's ``own`` file patterns, a non-empty directory without the tool's manifest that
    holds a file no such report writes (see :func:`imbalance_cli.report.writer.check_out_dir`).
    """
    if out is not None:
        check_out_dir(out, own=own, inputs=inputs)


def set_quiet(quiet: bool) -> None:
    """Apply ``--quiet`` (no progress bars); otherwise bars are drawn with rich on a terminal."""
    progress.set_bar(rich_bar)
    progress.set_counter(RichCounter)
    progress.set_phase_printer(_phase_line)
    progress.set_enabled(not quiet)
    try:
        progress.phase_delay()  # a bad $IMBALANCE_PHASE_DELAY is refused before any work
    except ValueError as e:
        raise InputError(str(e)) from None


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
