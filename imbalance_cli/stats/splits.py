"""Dataset splits side by side (a YOLO ``data.yaml`` with train / val / test).

:func:`split_statistics` runs :func:`imbalance_cli.stats.analysis.analyze` on every split of a
dataset loaded from a ``data.yaml`` (``Dataset.info["splits"]``) and compares two of them (train
vs val by default) with :func:`imbalance_cli.stats.compare.compare_datasets`: total-variation and
Jensen-Shannon distances of the class distributions, Wasserstein-1 and TV of the relative
width/height/area histograms, TV of the box-centre histograms (definitions in
:mod:`imbalance_cli.stats.compare`). The result is the plain ``imbalance.splits/1`` dict:

``{"schema", "path", "format", "order": [split names], "splits": {name: imbalance.stats/1 report},
"comparison": imbalance.compare/1 report or None, "compared": [a, b] or None,
"labels": {label-file findings of the loader}}``
"""

from __future__ import annotations

from typing import Any

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.data.yolo import label_summary, split_datasets
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import to_jsonable

SCHEMA = "imbalance.splits/1"


def has_splits(dataset: Dataset) -> bool:
    """True when ``dataset`` came from a file with at least two splits."""
    return len(dataset.info.get("splits") or {}) >= 2


def pick_pair(names: list[str], compare: tuple[str, str] | None = None) -> tuple[str, str] | None:
    """The two splits to compare: ``compare`` if given (both must exist), else train/val, else the first two."""
    if compare is not None:
        missing = [c for c in compare if c not in names]
        if missing:
            raise InputError(f"no split named {missing[0]!r} to compare (splits: {', '.join(names)})")
        return compare[0], compare[1]
    if "train" in names and "val" in names:
        return "train", "val"
    return (names[0], names[1]) if len(names) >= 2 else None


def split_statistics(
    dataset: Dataset,
    *,
    compare: tuple[str, str] | None = None,
    scale_bins: int = 50,
    location_bins: int = 20,
    box_tables: dict | None = None,
    **analyze_options: Any,
) -> dict:
    """Per-split statistics and a two-split comparison (see module docstring).

    ``analyze_options`` go to :func:`~imbalance_cli.stats.analysis.analyze` for every split (e.g.
    ``anchors="yolov5"``, ``strict``); ``scale_bins``/``location_bins`` set both the per-split
    histograms and the comparison's. ``box_tables``, when given, is filled with each split's per-box table
    (:class:`imbalance_cli.stats.boxes.BoxTable`, with anchors).
    """
    from imbalance_cli.stats.analysis import analyze
    from imbalance_cli.stats.compare import compare_profiles

    parts = split_datasets(dataset)
    if not parts:
        raise InputError("this dataset has no splits (load a data.yaml with train/val)", path=dataset.path)
    names = list(parts)
    reports = {}
    for name, sub in parts.items():
        rep = analyze(sub, hist_bins=scale_bins, location_bins=location_bins, **analyze_options)
        reports[name] = rep.to_dict()
        if box_tables is not None and rep.box_table is not None:
            box_tables[name] = rep.box_table
    pair = pick_pair(names, compare)
    comparison = None
    if pair is not None:
        a, b = (report_profile(parts[k], reports[k], scale_bins) for k in pair)
        comparison = to_jsonable(compare_profiles(a, b, names=pair))
    return {
        "schema": SCHEMA,
        "path": dataset.path,
        "format": dataset.format,
        "order": names,
        "splits": reports,
        "compared": list(pair) if pair else None,
        "comparison": comparison,
        "labels": label_summary(dataset),
    }


def report_profile(dataset: Dataset, report: dict, scale_bins: int = 50) -> dict:
    """:func:`imbalance_cli.stats.compare.dataset_profile` of ``dataset`` (without anchors), read off its own
    ``imbalance.stats/1`` ``report`` (made with ``hist_bins=scale_bins``) instead of computed again.

    Both count the same valid boxes into the same bins: instances and images per class are the report's
    per-class rows, the relative width/height/area histograms its ``scale`` counts on the same
    ``linspace(0, 1, scale_bins + 1)`` edges, the centre histogram its ``location`` counts (rows = y; a
    centre outside [0, 1] in the border bin, as ``dataset_profile`` clips it).
    """
    import numpy as np

    from imbalance_cli.stats.compare import SCALE_KEYS, names_given

    rows = report["classes"]
    edges = np.linspace(0.0, 1.0, scale_bins + 1)
    return {
        "path": dataset.path,
        "format": dataset.format,
        "images": dataset.num_images,
        "boxes": int(report["dataset"]["boxes"]),
        "category_ids": dataset.category_ids,
        "names": dataset.category_names,
        "names_given": names_given(dataset),
        "instances": np.array([r["instances"] for r in rows], np.int64),
        "images_per_class": np.array([r["images"] for r in rows], np.int64),
        "scale": {k: {"edges": edges, "counts": np.array(report["scale"][k]["counts"], np.int64)} for k in SCALE_KEYS},
        "location": np.array(report["location"]["counts"], np.float64),
    }
