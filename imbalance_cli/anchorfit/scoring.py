"""How a candidate anchor set is scored: what the detector's labelling gives each box, and the objectives.

Every candidate is labelled by the exact engine the statistics use (:func:`imbalance_cli.stats.anchors.label_anchors`:
the preset's resize, grid, steps and matcher or assigner; YOLOv5's ``build_targets`` for a yolov5 preset) and scored
by what the detector will see (:func:`label_metrics`):

* **coverage** -- share of boxes with at least one positive *at the positive threshold*: max-IoU presets, an
  anchor the matcher assigns to the box with IoU >= ``pos_iou`` (low-quality matches do not count, and an anchor
  taken by an overlapping box with a higher IoU does not count for this one); ATSS: at least one positive;
* **positives per box** -- mean number of positive anchors per box;
* the **balance** of both across COCO size groups (area < 32², < 96², else) and class-frequency groups
  (classes split into thirds by instance count in the dataset) -- the imbalance of positives across scales
  and classes of Oksuz et al., "Imbalance Problems in Object Detection: A Review", TPAMI 2021, §5.4 and
  Fig. 4b;
* **BPR** (best possible recall of AutoAnchor's ratio metric) for presets that declare a ratio threshold
  (``anchor_t``, YOLO-style); see :data:`BPR_PRESET_ATTRIBUTE`.

Objectives (a scalar to maximise, :func:`objective_score`):

* ``coverage``: ``0.5 C + 0.25 mean_g C_g + 0.25 min_g C_g`` over the size groups g that have boxes
  (C = coverage): overall coverage, with the worst size group weighted in.
* ``positives``: ``(min_g P_g / max_g P_g) * min(1, P / P_0)`` subject to ``C >= C_0`` (a candidate covering
  fewer boxes scores ``C - C_0 < 0``), with P_g the mean positives per box of group g over the size groups and
  the class-frequency groups, P the overall mean, P_0 and C_0 the original preset's (on the same images):
  positives balanced across scales and class frequencies (the starved group against the best fed), never bought
  by losing boxes, and no reward for piling up positives beyond the preset's own level.
* ``bpr``: AutoAnchor's BPR plus ``0.001`` x its fitness ``mean(best * (best > 1/anchor_t))``.
"""

from __future__ import annotations

import numpy as np

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats.geometry import SIZE_GROUPS, size_group_codes

OBJECTIVES = ("coverage", "positives", "bpr")
FREQUENCY_GROUPS = ("rare third", "middle third", "frequent third")
#: A preset declares BPR (YOLO-style ratio matching) by carrying this attribute (the ratio threshold).
BPR_PRESET_ATTRIBUTE = "anchor_t"


def size_groups(dataset: Dataset, order: np.ndarray, size_by: str = "box") -> np.ndarray:
    """Size group per box (0 small: area < 32², 1 medium: < 96², 2 large): the box's w·h in original pixels, or
    the file's ``area`` with ``size_by="area_field"`` (COCO-eval groups); the one definition of
    :func:`imbalance_cli.stats.geometry.size_group_codes`."""
    return size_group_codes(dataset, order, size_by).astype(np.int64)


def frequency_groups(dataset: Dataset) -> np.ndarray:
    """Per category row: 0/1/2 = rarest / middle / most frequent third of the classes that have valid boxes,
    ranked by valid instance count in the whole dataset (ties by category id); -1 for classes without boxes.

    The thirds are relative to the dataset (not LVIS's image-count thresholds, which assume LVIS's size).
    """
    C = dataset.num_categories
    counts = np.bincount(dataset.box_category[dataset.valid_mask()], minlength=C)
    present = np.flatnonzero(counts > 0)
    out = np.full(C, -1, np.int64)
    if len(present):
        rank = present[np.lexsort((dataset.category_ids[present], counts[present]))]
        for g, chunk in enumerate(np.array_split(rank, 3)):
            out[chunk] = g
    return out


def _group_table(covered, pos_count, groups, names) -> dict:
    out = {}
    for g, name in enumerate(names):
        m = groups == g
        n = int(m.sum())
        out[name] = {
            "boxes": n,
            "coverage": float(covered[m].mean()) if n else None,
            "positives_per_box": float(pos_count[m].mean()) if n else None,
        }
    return out


def label_metrics(lp, dataset: Dataset, freq_of_class: np.ndarray, size_by: str = "box") -> dict:
    """Coverage and positives per box, overall and by size / class-frequency group, from one labelling pass.

    ``lp`` is an :class:`imbalance_cli.stats.anchors.AnchorLabels` over ``dataset``. ``boxes_without_positive``
    counts boxes without any positive (low-quality matches counted), ``boxes_below_positive_iou`` boxes not
    covered at the positive threshold (:mod:`imbalance_cli.vocabulary`); ``background_per_foreground`` is
    background / foreground anchors (None where the pass does not count anchors).
    """
    res, preset = lp.result, lp.preset
    n = len(lp.order)
    pos_count = np.bincount(res.pos_box, minlength=n).astype(np.int64) if n else np.zeros(0, np.int64)
    if getattr(preset, "assigner", "max_iou") == "max_iou":  # a positive assigned to the box at the threshold
        strong = np.asarray(res.pos_iou) >= np.float32(preset.pos_iou)
        covered = np.bincount(np.asarray(res.pos_box)[strong], minlength=n) > 0 if n else np.zeros(0, bool)
    else:
        covered = pos_count > 0
    sg = size_groups(dataset, lp.order, size_by)
    fg = freq_of_class[dataset.box_category[lp.order]]
    by_size = _group_table(covered, pos_count, sg, SIZE_GROUPS)
    by_freq = _group_table(covered, pos_count, fg, FREQUENCY_GROUPS)
    ppb = [v["positives_per_box"] for v in by_size.values() if v["boxes"]]
    foreground = int(len(res.pos_box))
    background = None
    if getattr(lp, "anchors_per_image", None) is not None:
        per = lp.per_image(dataset.num_images)
        foreground, background = int(per["foreground"].sum()), int(per["background"].sum())
    return {
        "images": int(dataset.num_images),
        "boxes": int(n),
        "coverage": float(covered.mean()) if n else None,
        "positives_per_box": float(pos_count.mean()) if n else None,
        "boxes_without_positive": int((pos_count == 0).sum()),
        "boxes_below_positive_iou": int(n - covered.sum()),
        "size_balance": (min(ppb) / max(ppb)) if ppb and max(ppb) > 0 else None,
        "by_size": by_size,
        "by_frequency": by_freq,
        "foreground": foreground,
        "background": background,
        "background_per_foreground": background / foreground if background is not None and foreground else None,
    }


def bpr_metrics(wh: np.ndarray, anchors_wh: np.ndarray, anchor_t: float) -> dict:
    """AutoAnchor's ``metric()`` (ultralytics/yolov5 ``utils/autoanchor.py`` ``check_anchors``):
    ``r = wh / anchor``, ``x = min(r, 1/r).min(over w, h)``, ``best = x.max(over anchors)``;
    BPR = ``mean(best > 1/anchor_t)``, fitness = ``mean(best * (best > 1/anchor_t))``."""
    wh = np.asarray(wh, np.float64).reshape(-1, 1, 2)
    k = np.asarray(anchors_wh, np.float64).reshape(1, -1, 2)
    if wh.shape[0] == 0:
        return {"bpr": None, "fitness": None}
    r = wh / k
    x = np.minimum(r, 1.0 / r).min(axis=2)
    best = x.max(axis=1)
    t = 1.0 / float(anchor_t)
    return {"bpr": float((best > t).mean()), "fitness": float((best * (best > t)).mean())}


def objective_score(metrics: dict, objective: str, reference: tuple[float, float] | None = None) -> float:
    """The scalar the search maximises (see the module docstring for each objective's formula).

    ``reference``: the original preset's ``(positives per box, coverage)`` on the same images (the ``positives``
    objective's cap and constraint; None = this candidate's own).
    """
    if objective == "bpr":
        return float(metrics["bpr"] or 0.0) + 0.001 * float(metrics.get("fitness") or 0.0)
    cov = metrics["coverage"] or 0.0
    groups = [v for v in metrics["by_size"].values() if v["boxes"]]
    if objective == "coverage":
        gc = [v["coverage"] for v in groups] or [cov]
        return 0.5 * cov + 0.25 * float(np.mean(gc)) + 0.25 * float(min(gc))
    if objective == "positives":
        gp = [
            v["positives_per_box"] for sec in ("by_size", "by_frequency") for v in metrics[sec].values() if v["boxes"]
        ]
        p = metrics["positives_per_box"] or 0.0
        if not gp or max(gp) <= 0:
            return 0.0
        ref_p, ref_c = reference if reference else (p, cov)
        if cov < ref_c:  # a constraint: never fewer boxes covered than the original preset
            return cov - ref_c
        return (min(gp) / max(gp)) * (min(1.0, p / ref_p) if ref_p > 0 else 1.0)
    raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
