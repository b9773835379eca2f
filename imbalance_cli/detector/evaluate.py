"""Evaluation with the tools everyone trusts: pycocotools ``COCOeval`` and lvis ``LVISEval``.

* COCO box AP (``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``: ``COCOeval.stats[0:6]``, 100
  detections per image);
* LVIS ``APr``, ``APc``, ``APf`` (lvis-api ``LVISEval``, 300 detections per image; the ground truth's
  categories carry r/c/f frequencies from the *training* image counts);
* ``AP_per_class`` (COCO AP@[.5:.95] per category from ``COCOeval.eval['precision']``) and
  ``AP_bins``: the mean per-class AP of each BAGS bin of training-instance counts
  (Li et al., Balanced Group Softmax, CVPR 2020, Eq. 3: bins [0, 10), [10, 100), [100, 1000), [1000, inf)).

lvis 0.5.3 calls ``np.float``, removed in NumPy 1.24; :func:`numpy_float_alias` provides the alias
only while LVISEval runs and removes it afterwards, so NumPy stays unpinned and unpatched.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import warnings
from typing import Iterator, Sequence

import numpy as np

from imbalance_cli import progress
from imbalance_cli.fileio import write_error
from imbalance_cli.losses.grouping import DEFAULT_BAGS_EDGES, bags_groups

METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")


@contextlib.contextmanager
def numpy_float_alias() -> Iterator[None]:
    """Temporarily define ``np.float = float`` (removed in NumPy >= 1.24) for lvis 0.5.3.

    If NumPy already has the attribute nothing is changed; otherwise it is removed on exit,
    even when the body raises.
    """
    added = "float" not in np.__dict__
    if added:
        np.float = float  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added and "float" in np.__dict__:
            del np.float  # type: ignore[attr-defined]


def coco_eval(gt: dict, detections: list[dict]) -> tuple[dict, np.ndarray]:
    """Run pycocotools ``COCOeval`` (bbox) on ``gt`` (a COCO/LVIS dict) and result dicts.

    Returns ``({AP, AP50, AP75, APs, APm, APl}, per-class AP array aligned with the sorted
    category ids; NaN for a class without ground truth)``. A metric pycocotools cannot define
    (its -1, e.g. APl when no ground truth is large) is NaN (``null`` in metrics.json).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    cat_ids = sorted(c["id"] for c in gt["categories"])
    if not detections:
        per = np.array([np.nan if not _has_gt(gt, c) else 0.0 for c in cat_ids])
        return {k: 0.0 for k in METRIC_KEYS[:6]}, per
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        dt = coco.loadRes(copy.deepcopy(detections))
        ev = COCOeval(coco, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # pycocotools reports -1 when a metric is undefined (e.g. APl without large objects): NaN here
    stats = {k: (float(v) if v > -1 else float("nan")) for k, v in zip(METRIC_KEYS[:6], ev.stats[:6])}
    prec = ev.eval["precision"][:, :, :, 0, -1]  # T, R, K (area all, maxDets 100)
    per = np.full(len(cat_ids), np.nan)
    for k in range(prec.shape[2]):
        p = prec[:, :, k]
        if np.any(p > -1):
            per[k] = float(np.mean(p[p > -1]))
    return stats, per


def _has_gt(gt: dict, cat_id: int) -> bool:
    return any(a["category_id"] == cat_id for a in gt["annotations"])


def lvis_eval(gt: dict, detections: list[dict], max_dets: int = 300) -> dict:
    """Run lvis-api ``LVISEval`` (bbox) and return ``{APr, APc, APf}`` (-1 -> NaN for an empty group).

    ``gt`` must be LVIS-style: categories with ``frequency``, images with ``neg_category_ids``
    and ``not_exhaustive_category_ids``.
    """
    from lvis import LVIS, LVISEval, LVISResults

    if not detections:
        return {k: 0.0 for k in ("APr", "APc", "APf")}
    path = None
    try:
        try:  # lvis-api reads its ground truth from a file
            fd, path = tempfile.mkstemp(suffix=".json", prefix="imbalance-lvis-gt-")
            with os.fdopen(fd, "w") as f:
                json.dump(gt, f)
        except OSError as e:
            raise write_error(tempfile.gettempdir(), e, "the evaluation's ground-truth file", "TMPDIR") from None
        with numpy_float_alias(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            import logging

            warnings.simplefilter("ignore", DeprecationWarning)

            level = logging.getLogger("lvis").level
            logging.getLogger("lvis").setLevel(logging.ERROR)
            try:
                lgt = LVIS(path)
                ldt = LVISResults(lgt, copy.deepcopy(detections), max_dets=max_dets)
                ev = LVISEval(lgt, ldt, iou_type="bbox")
                ev.run()
                res = ev.get_results()
            finally:
                logging.getLogger("lvis").setLevel(level)
    finally:
        if path is not None:
            os.unlink(path)
    return {k: (float(res[k]) if res[k] > -1 else float("nan")) for k in ("APr", "APc", "APf")}


def ap_bins(
    per_class_ap: np.ndarray, train_instances: Sequence[int], edges: Sequence[float] | None = None
) -> list[dict]:
    """Mean per-class AP in each BAGS bin of training-instance counts (Li et al., Balanced
    Group Softmax, CVPR 2020, Eq. 3).

    Returns one dict per bin ``{"bin": "[lo, hi)", "classes": n, "AP": mean or None}``; classes
    without held-out ground truth (NaN AP) are left out of the mean.
    """

    e = list(DEFAULT_BAGS_EDGES if edges is None else edges)
    counts = np.asarray(train_instances)
    groups = bags_groups(np.clip(counts, e[0], None), e)
    out = []
    for g in range(1, len(e)):
        sel = (groups == g) & ~np.isnan(per_class_ap)
        hi = "inf" if np.isinf(e[g]) else f"{e[g]:g}"
        out.append(
            {
                "bin": f"[{e[g - 1]:g}, {hi})",
                "classes": int(np.sum(groups == g)),
                "AP": float(np.mean(per_class_ap[sel])) if sel.any() else None,
            }
        )
    return out


def evaluate(gt: dict, detections: list[dict], train_instances: Sequence[int]) -> dict:
    """All metrics of a run: COCO AP family, LVIS APr/APc/APf, ``AP_per_class``, ``AP_bins``."""
    with progress.counter(2, "evaluating (pycocotools, then lvis)") as bar:
        stats, per = coco_eval(gt, detections)
        bar.advance(1)
        stats.update(lvis_eval(gt, detections))
        bar.advance(1)
    stats["AP_per_class"] = [None if np.isnan(v) else float(v) for v in per]
    stats["AP_bins"] = ap_bins(per, train_instances)
    return stats
