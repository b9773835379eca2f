"""Long-tail groupings and re-balancing inputs from per-class counts (``imbalance groups``).

* **BAGS groups** (Li et al., Balanced Group Softmax, CVPR 2020, Eq. 3): class ``j`` is in group ``n`` when
  ``s_l^n <= N(j) < s_h^n`` (training-instance counts; default edges 0, 10, 100, 1000, inf -> groups 1..4; group 0 is
  the background). The label mapping ``label2binlabel`` ((N+1, C+1)) and ``pred_slice`` ((N+1, 2)) the BAGS head needs
  come from :func:`imbalance_cli.losses.longtail.bags_label2binlabel` and
  :func:`~imbalance_cli.losses.longtail.bags_pred_slice` (one definition, shared with the loss).
* **LVIS frequency groups** from image counts: rare <= 10, common 11-100, frequent > 100 images
  (LVIS's thresholds; ``frequency_scope`` says whether they mean anything for a dataset this size,
  see :func:`imbalance_cli.stats.classes.lvis_frequency_scope`).
* **Repeat-factor sampling** (Gupta et al., LVIS 2019, §5; detectron2's rule): ``f(c)`` = fraction of
  images containing ``c``, ``r(c) = max(1, sqrt(t / f(c)))`` (t = 0.001 by default), an image's factor
  is the max over its classes (1 for an image without boxes); the expected epoch length is the sum of
  the image factors (stochastic rounding keeps the expectation).
* **Class-balanced weights** (Cui et al., CVPR 2019, effective number): ``w_c = (1 - beta) / (1 - beta^n_c)``
  (beta = 0.999 by default); ``normalized`` rescales them to sum to the number of classes with n_c > 0.

Rendering and writing: :mod:`imbalance_cli.report.groups`.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from imbalance_cli.errors import InputError
from imbalance_cli.stats.classes import (
    BOX_BLOCK,
    DEFAULT_BAGS_EDGES,
    bags_groups,
    lvis_frequency,
    lvis_frequency_scope,
)
from imbalance_cli.stats.counts import ClassCounts

SCHEMA = "imbalance.groups/1"
DEFAULT_REPEAT_THRESHOLD = 0.001
DEFAULT_CB_BETA = 0.999


def parse_edges(text: str) -> tuple[float, ...]:
    """Parse ``"0,10,100,1000,inf"`` into BAGS edges; :class:`InputError` when not strictly increasing numbers."""
    try:
        edges = tuple(float(t) for t in str(text).split(",") if t.strip())
    except ValueError:
        raise InputError(
            f"--bags-edges must be comma-separated numbers (e.g. 0,10,100,1000,inf), got {text!r}"
        ) from None
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])) or any(math.isnan(e) for e in edges):
        raise InputError(f"--bags-edges must be at least two strictly increasing numbers, got {text!r}")
    return edges


def _edges_json(edges: Sequence[float]) -> list:
    return ["inf" if math.isinf(e) else (int(e) if float(e).is_integer() else float(e)) for e in edges]


def repeat_factors(
    image_counts: np.ndarray, num_images: int, threshold: float = DEFAULT_REPEAT_THRESHOLD
) -> np.ndarray:
    """Per-class repeat factor ``r(c) = max(1, sqrt(t / f(c)))``, ``f(c) = image_counts / num_images``.

    LVIS repeat-factor sampling (Gupta et al. 2019, §5). Classes in no image get NaN (no image
    carries them, so they never set an image's factor).
    """
    ic = np.asarray(image_counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ic / float(num_images)
        r = np.maximum(1.0, np.sqrt(threshold / f))
    r[ic <= 0] = np.nan
    return r


def image_repeat_factors(dataset, class_factors: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-image factor: max of ``class_factors`` over the classes of its valid boxes (1.0 without boxes);
    ``mask``: the valid-box mask, when the caller has it."""
    mask = dataset.valid_mask() if mask is None else mask
    out = np.ones(dataset.num_images, dtype=np.float64)
    cf = np.nan_to_num(np.asarray(class_factors, dtype=np.float64), nan=1.0)
    for a in range(0, len(mask), BOX_BLOCK):  # in blocks: no per-box float64 array at 25 M boxes
        keep = mask[a : a + BOX_BLOCK]
        np.maximum.at(
            out, dataset.box_image[a : a + BOX_BLOCK][keep], cf[dataset.box_category[a : a + BOX_BLOCK][keep]]
        )
    return out


def class_balanced_weights(instance_counts: np.ndarray, beta: float = DEFAULT_CB_BETA) -> tuple[np.ndarray, np.ndarray]:
    """Effective-number weights ``(1 - beta) / (1 - beta^n)`` (Cui et al. 2019, Eq. 3 inverse) and their
    normalised form (sum = number of classes with n > 0). Classes with n = 0 get NaN."""
    if not (0.0 <= beta < 1.0):
        raise InputError(f"--cb-beta must be in [0, 1), got {beta}")
    n = np.asarray(instance_counts, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = (1.0 - beta) / (1.0 - np.power(beta, n))
    if beta == 0.0:
        w = np.ones_like(n)
    w[n <= 0] = np.nan
    used = np.isfinite(w)
    norm = np.full_like(w, np.nan)
    if used.any():
        norm[used] = w[used] * used.sum() / w[used].sum()
    return w, norm


def _bags_section(counts: ClassCounts, grp: np.ndarray, edges: Sequence[float]) -> dict:
    """The report's ``bags`` section: each group's count range, classes, instances and category ids."""
    groups = []
    for n in range(1, len(edges)):
        sel = grp == n
        groups.append(
            {
                "index": n,
                "range": _edges_json(edges[n - 1 : n + 1]),
                "classes": int(sel.sum()),
                "instances": int(counts.instances[sel].sum()),
                "category_ids": counts.ids[sel].tolist(),
            }
        )
    return {"edges": _edges_json(edges), "groups": groups}


def _frequency_disagreements(counts: ClassCounts, freq: np.ndarray) -> list:
    """Classes whose frequency letter in the file differs from the one computed from image counts."""
    if counts.frequency_from_file is None:
        return []
    return [
        {
            "id": int(counts.ids[i]),
            "name": str(counts.names[i]),
            "file": str(counts.frequency_from_file[i]),
            "computed": str(freq[i]),
        }
        for i in np.flatnonzero((counts.frequency_from_file != "") & (counts.frequency_from_file != freq))
    ]


def _repeat_factor_section(counts: ClassCounts, repeat_threshold: float) -> dict:
    """The report's ``repeat_factors`` section: per-class factors and the expected epoch length (or its bounds)."""
    rf: dict = {
        "threshold": float(repeat_threshold),
        "num_images": counts.num_images,
        "per_class": None,
        "expected_epoch_images": None,
    }
    if counts.num_images is None:
        rf["note"] = "repeat factors need the image total: pass --num-images N"
        return rf
    r = repeat_factors(counts.images, counts.num_images, repeat_threshold)
    rf["per_class"] = _per_class_floats(counts.ids, r)
    if counts.dataset is not None and counts.num_images == counts.dataset.num_images:
        rf["expected_epoch_images"] = float(image_repeat_factors(counts.dataset, r).sum())
        return rf
    # Without per-image class sets only bounds are known: every image of class c has a factor
    # >= r(c) (lower), and max <= 1 + sum of (r - 1) over its classes (upper).
    rr = np.nan_to_num(r, nan=1.0)
    lo = (
        float(np.max(counts.images * rr + (counts.num_images - counts.images))) if len(rr) else float(counts.num_images)
    )
    hi = float(counts.num_images + np.sum(counts.images * (rr - 1.0)))
    rf["expected_epoch_images_bounds"] = [max(lo, float(counts.num_images)), hi]
    rf["note"] = "category statistics only: expected epoch length given as [lower, upper] bounds"
    return rf


def _per_class_floats(ids: np.ndarray, values: np.ndarray) -> dict:
    """``{category id: value}`` with NaN written as null."""
    return {str(int(i)): (None if np.isnan(v) else float(v)) for i, v in zip(ids, values)}


def long_tail_groups(
    counts: ClassCounts,
    edges: Sequence[float] = DEFAULT_BAGS_EDGES,
    repeat_threshold: float = DEFAULT_REPEAT_THRESHOLD,
    cb_beta: float = DEFAULT_CB_BETA,
) -> dict:
    """The ``imbalance.groups/1`` report (see module docstring for every formula)."""
    if counts.num_classes == 0:
        raise InputError("no categories defined", path=counts.source)
    if not (repeat_threshold > 0):
        raise InputError(f"--repeat-threshold must be positive, got {repeat_threshold}")
    ids = counts.ids
    try:
        grp = bags_groups(counts.instances, edges)
    except ValueError as e:
        raise InputError(str(e)) from None
    freq = lvis_frequency(counts.images)
    rf = _repeat_factor_section(counts, repeat_threshold)
    w, wn = class_balanced_weights(counts.instances, cb_beta)
    cb = {"beta": float(cb_beta), "per_class": _per_class_floats(ids, w), "normalized": _per_class_floats(ids, wn)}
    per_class = [
        {
            "id": int(ids[i]),
            "name": str(counts.names[i]),
            "instances": int(counts.instances[i]),
            "images": int(counts.images[i]),
            "bags_group": int(grp[i]),
            "frequency": str(freq[i]),
        }
        for i in range(counts.num_classes)
    ]
    return {
        "schema": SCHEMA,
        "num_classes": counts.num_classes,
        "num_images": counts.num_images,
        "bags": _bags_section(counts, grp, edges),
        "frequency": {k: int((freq == k).sum()) for k in ("r", "c", "f")},
        "frequency_scope": lvis_frequency_scope(counts.num_images),
        "frequency_disagreements": _frequency_disagreements(counts, freq),
        "repeat_factors": rf,
        "class_balanced": cb,
        "classes": per_class,
    }


def bags_mappings(counts: ClassCounts, edges: Sequence[float] = DEFAULT_BAGS_EDGES) -> tuple[np.ndarray, np.ndarray]:
    """``(label2binlabel (N+1, C+1), pred_slice (N+1, 2))`` as int64 arrays, from the losses library (Li et al.,
    Balanced Group Softmax, CVPR 2020, §4)."""
    from imbalance_cli.losses.longtail import bags_label2binlabel, bags_pred_slice  # torch, lazily

    try:
        l2b = bags_label2binlabel(counts.instances, edges)
        ps = bags_pred_slice(counts.instances, edges)
    except ValueError as e:
        raise InputError(str(e)) from None

    def arr(x):
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        return np.asarray(x, dtype=np.int64)

    return arr(l2b), arr(ps)


def groups_table(report: dict):
    """Per-group summary DataFrame: group 0 (background) then groups 1..N with class and instance totals."""
    import pandas as pd

    rows = [{"group": 0, "range": "background", "classes": 1, "instances": None}]
    for g in report["bags"]["groups"]:
        rows.append(
            {
                "group": g["index"],
                "range": f"[{g['range'][0]}, {g['range'][1]})",
                "classes": g["classes"],
                "instances": g["instances"],
            }
        )
    return pd.DataFrame(rows)
