"""Choosing a split of a multi-split dataset (a YOLO ``data.yaml`` with train / val / test): ``--split NAME``.

A ``data.yaml`` loads as one :class:`~imbalance_cli.data.dataset.Dataset` holding every split, with
``info["splits"]`` naming each split's image rows. Commands that describe one dataset must not merge
them silently (fitting anchors on train + val leaks val into the fit), so every command picks one:

* ``--split NAME`` selects that split (an unknown name is refused, with the closest name offered);
* without it, a command whose numbers describe what a detector trains on (``anchors``, ``margins``,
  ``groups``, ``batches``, ``train``) takes the ``train`` split, as the Ultralytics trainer and
  YOLOv5's AutoAnchor do, and says so on stderr; ``stats`` reports every split side by side,
  ``check`` checks every split in turn, ``compare`` compares two splits of one file;
* ``--split`` on a file without splits is refused (an option never silently ignored).
"""

from __future__ import annotations

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError, did_you_mean

#: The split a training-side command uses when ``--split`` is not given (Ultralytics' ``train`` key).
TRAIN_SPLIT = "train"


def split_names(dataset: Dataset) -> list[str]:
    """The dataset's split names in file order ([] for a dataset without splits)."""
    return list(dataset.info.get("splits") or {})


def has_splits(dataset: Dataset) -> bool:
    """True when the dataset holds two or more splits."""
    return len(split_names(dataset)) >= 2


def split_of(dataset: Dataset, name: str) -> Dataset:
    """The sub-dataset of split ``name`` (its images and their boxes; ``info["split"]`` = ``name``).

    Raises :class:`InputError` naming the file and the splits it has when ``name`` is not one of them, or
    when the dataset has no splits.
    """
    names = split_names(dataset)
    if not names:
        raise InputError(
            f"--split {name}: this file has no splits (only a data.yaml with train/val/test has)", path=dataset.path
        )
    if name not in names:
        raise InputError(
            f"--split {name}: no such split{did_you_mean(name, names)}; the file has {', '.join(names)}",
            path=dataset.path,
        )
    from imbalance_cli.data.yolo import split_datasets

    sub = split_datasets(dataset)[name]
    sub.info["split"] = name
    return sub


def select_split(dataset: Dataset, name: str | None, *, default: str | None = TRAIN_SPLIT, note=None) -> Dataset:
    """The one dataset a command works on: split ``name``, or ``default`` of a multi-split dataset.

    ``name`` None and a dataset with fewer than two splits: the dataset itself (a single split is that
    split). ``name`` None and several splits: split ``default`` (``note(text)`` is told which, e.g. to
    print it on stderr), or :class:`InputError` asking for ``--split`` when ``default`` is None or absent.
    """
    if name is not None:
        return split_of(dataset, name)
    names = split_names(dataset)
    if len(names) < 2:
        return dataset
    if default is None or default not in names:
        raise InputError(
            f"the file has splits {', '.join(names)}: choose one with --split NAME (statistics of "
            "several splits merged would describe no dataset a detector sees)",
            path=dataset.path,
        )
    if note is not None:
        note(f"using split '{default}' of {dataset.path} (splits: {', '.join(names)}; --split NAME to choose)")
    return split_of(dataset, default)
