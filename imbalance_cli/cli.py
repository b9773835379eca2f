"""The ``imbalance`` command line: a Typer app that only wires commands together.

Each command lives in ``imbalance_cli/commands/<name>.py`` as a thin function (arguments
-> library call -> renderer) exposing ``register(app)``. Heavy imports (torch, matplotlib,
pandas) happen inside the command bodies, so ``imbalance --help`` stays fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

COMMAND_MODULES = ("stats", "margins", "groups", "check", "compare", "batches", "train", "bench", "fit")

app = typer.Typer(
    name="imbalance",
    help="How imbalanced is a detection dataset as a detector sees it: anchor-level statistics, "
    "long-tail tools (ECM margins, BAGS groups), a CI gate, and training with imbalance losses.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"imbalance_cli.commands.{_name}").register(app)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """imbalance: detection-dataset imbalance as a detector sees it."""
    if version:
        from imbalance_cli import __version__

        typer.echo(__version__)
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app(prog_name="imbalance"))


if __name__ == "__main__":
    main()
