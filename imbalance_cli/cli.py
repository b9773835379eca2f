"""The ``imbalance`` command line: a Typer app that only wires commands together.

Each command lives in ``imbalance_cli/commands/<name>.py`` as a thin function (arguments
-> spec / library call -> renderer in ``imbalance_cli/report``) exposing ``register(app)``.
torch, matplotlib, pandas and rich are imported only where used, so ``imbalance --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from imbalance_cli import __version__
from imbalance_cli.commands import batches, bench, check, compare, fit, groups, margins, stats, train

#: The commands in the order ``--help`` lists them.
COMMAND_MODULES = (stats, fit, margins, groups, check, compare, batches, train, bench)

app = typer.Typer(
    name="imbalance",
    help="How imbalanced is a detection dataset as a detector sees it: anchor-level statistics, "
    "long-tail tools (ECM margins, BAGS groups), a CI gate, and training with imbalance losses.",
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _module in COMMAND_MODULES:
    _module.register(app)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True, metavar=""),
) -> None:
    """imbalance: detection-dataset imbalance as a detector sees it."""
    if version:
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
