"""``--split NAME``, the option every command reading a multi-split ``data.yaml`` shares (see
:mod:`imbalance_cli.data.splits` for what each command does without it)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.data.splits import TRAIN_SPLIT, select_split

SPLIT_HELP = "Split of a multi-split YOLO data.yaml (train, val, test, ...). Default: {default}."

SplitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--split",
        metavar="NAME",
        show_default=False,
        help=SPLIT_HELP.format(default="'train', the split a detector trains on (said on stderr)"),
    ),
]


def pick_split(
    dataset: Dataset, split: str | None, *, quiet: bool = False, default: str | None = TRAIN_SPLIT
) -> Dataset:
    """The split the command works on (:func:`imbalance_cli.data.splits.select_split`); the default choice is
    said on stderr unless ``quiet``."""
    note = None if quiet else (lambda text: typer.echo(text, err=True))
    names_hint(dataset, quiet)
    return select_split(dataset, split, default=default, note=note)


def split_note(text: str) -> None:
    """Say on stderr which split a command took by default."""
    typer.echo(text, err=True)


def names_hint(dataset: Dataset, quiet: bool = False) -> None:
    """A bare YOLO labels folder without a names file has classes "0", "1", ...: say on stderr how to name them."""
    names = [str(n) for n in dataset.category_names]
    if quiet or dataset.format != "yolo" or not names or names != [str(int(i)) for i in dataset.category_ids]:
        return
    if dataset.info.get("splits"):  # a data.yaml names its classes itself (its `names` may be indices on purpose)
        return
    typer.echo(
        f"note: the classes of {dataset.path} are shown as their label indices 0..{len(names) - 1}: pass "
        "--classes names.txt (one name per line, line k naming class k) or put a classes.txt beside the "
        "label files",
        err=True,
    )
