"""Anchor statistics under YOLOv5's assignment, plus AutoAnchor's BPR (``--anchors yolov5``).

:func:`yolov5_statistics` returns the same ``anchors`` dict as
:func:`imbalance_cli.stats.anchors.anchor_statistics` (positives per class, per instance, per
level, coverage by class and size, Fig. 14 spatial histogram) computed with
:func:`imbalance_cli.anchors.yolov5.assign_yolov5` on YOLOv5's letterboxed 640 input, and adds
``autoanchor``: best possible recall and anchors above threshold as ultralytics/yolov5
``utils/autoanchor.py`` ``check_anchors`` reports them.

Differences in meaning from the IoU-matcher report (also stated in the dict's ``notes``):

* ``foreground`` counts distinct anchors with an objectness target (``background`` = anchors -
  ``foreground``, ``pos_neg_ratio`` from these); ``foreground_entries`` counts build_targets'
  entries (box, anchor, cell), what the box and class losses sum over, and the per-class, per-level
  and per-box positives count entries too (two boxes can claim one anchor);
* every "IoU" field (``positive_iou``, ``box_max_iou``, coverage, ``thresholds``) holds the
  width/height **ratio metric** ``min(min(r, 1/r))`` of AutoAnchor with threshold ``1/anchor_t``;
  ``below_negative`` equals ``without_positive`` (there is one threshold) and ``negative_iou`` is
  empty (no negatives are defined by overlap).
"""

from __future__ import annotations

import time

import numpy as np

from imbalance_cli.anchors.yolov5 import (
    YOLOV5,
    YoloV5Preset,
    assign_yolov5,
    autoanchor_metric,
    autoanchor_wh,
    letterbox_boxes,
    letterbox_geometry,
    level_grids,
    num_anchors,
)
from imbalance_cli.data.arrays import unique_ints
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.specs import check_letterbox_images
from imbalance_cli.stats.geometry import SIZE_GROUPS, iou_counts, iou_edges, size_group_codes

SPATIAL_BINS = 40
SPATIAL_RANGE = (-1.0, 1.0)


def _assigned(dataset: Dataset, preset: YoloV5Preset, matcher, pos_iou, neg_iou):
    """The options checked, then YOLOv5's letterbox and ``build_targets`` over the valid boxes:
    ``(order, box images, padded heights, padded widths, letterboxed boxes, MatchOutput)``."""
    if matcher is not None and str(matcher).lower() not in ("auto", "torchvision", "yolov5"):
        raise InputError(f"--matcher {matcher} does not apply to the yolov5 preset (YOLOv5's build_targets assigns)")
    if pos_iou is not None or neg_iou is not None:
        raise InputError(
            "--pos-iou/--neg-iou do not apply to the yolov5 preset (it assigns by width/height ratio, "
            f"anchor_t = {preset.anchor_t})"
        )
    if not dataset.has_image_sizes:
        raise InputError(
            "YOLOv5 anchor statistics need image sizes (the images themselves, or --anchors none)", path=dataset.path
        )
    H, W = dataset.heights, dataset.widths
    check_letterbox_images(preset, H, W, dataset.image_ids, dataset.path)  # the anchor pass's limits, before any work
    bad = np.flatnonzero(~(np.isfinite(H) & np.isfinite(W) & (H >= 1) & (W >= 1)))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"image {int(dataset.image_ids[i])} has no usable size ({W[i]} x {H[i]})", path=dataset.path)
    order, _ = dataset.image_offsets(dataset.valid_mask())
    bimg = dataset.box_image[order]
    _r, ph, pw, _px, _py = letterbox_geometry(H, W, preset)
    lb = letterbox_boxes(dataset.boxes[order], H[bimg], W[bimg], preset)
    return order, bimg, ph, pw, lb, assign_yolov5(preset, lb, bimg, ph, pw)


# long: the report's anchors section, one key a line in the schema's order; each value comes from a named helper
def yolov5_statistics(
    dataset: Dataset,
    preset: YoloV5Preset = YOLOV5,
    *,
    autoanchor_seed: int | None = None,
    spatial_bins: int = SPATIAL_BINS,
    matcher: str | None = None,
    pos_iou: float | None = None,
    neg_iou: float | None = None,
    device: str = "auto",
    negative_iou_sample=None,
    seed: int = 0,
    size_by: str = "box",
    box_arrays: dict | None = None,
) -> dict:
    """YOLOv5 assignment statistics of ``dataset`` (see module docstring); the report's ``anchors`` dict.

    The IoU-matcher options of ``analyze`` are accepted only where they mean nothing here: ``matcher``
    must be None, ``auto``, ``torchvision`` (the CLI default) or ``yolov5``; ``pos_iou``/``neg_iou``
    are rejected (YOLOv5 has no IoU threshold; its ``anchor_t`` is fixed by the preset); ``device``,
    ``negative_iou_sample`` and ``seed`` are ignored (CPU, no negative IoU histogram). ``box_arrays``: filled with
    the per-box arrays as :func:`imbalance_cli.stats.anchors.anchor_statistics` fills it (``max_iou`` the ratio
    metric, ``positives`` build_targets entries, ``ignored`` zeros, ``scaled`` the letterboxed boxes).
    """
    t0 = time.perf_counter()
    order, bimg, ph, pw, lb, res = _assigned(dataset, preset, matcher, pos_iou, neg_iou)
    n_img = dataset.num_images

    C = dataset.num_categories
    counts, ratios = _anchor_counts(res, num_anchors(preset, ph, pw), n_img, C)
    n = max(n_img, 1)
    cat_of_box = dataset.box_category[order]
    pos_per_class = np.bincount(cat_of_box[res.pos_box], minlength=C).astype(np.int64)
    inst = np.bincount(cat_of_box, minlength=C).astype(np.int64)
    cat_ids = [str(int(c)) for c in dataset.category_ids]
    per_box = np.bincount(res.pos_box, minlength=len(order)).astype(np.int64)

    levels = _levels(preset, res, ph, pw, n_img, len(order))
    edges = iou_edges(1.0)
    no_pos = per_box == 0
    sg = size_group_codes(dataset, order, size_by)  # the one size-group definition (box w·h by default)
    cov_class, cov_size = _coverage(no_pos, sg, cat_of_box, inst, cat_ids)
    if box_arrays is not None:  # YOLOv5 ignores no anchor
        box_arrays.update(_box_arrays(order, res, per_box, sg, lb, preset))

    aa = _autoanchor(dataset, order, bimg, preset, autoanchor_seed)
    return {
        **_assigner_fields(preset),
        "images": int(n_img),
        "boxes": int(len(order)),
        **counts,
        **_class_fields(cat_ids, pos_per_class, inst, dataset.category_names, n),
        "positives_per_box": {
            "mean": float(per_box.mean()) if len(per_box) else None,
            "counts": np.bincount(per_box, minlength=1).astype(int).tolist(),
        },
        **ratios,
        "num_classes": int(C),
        "levels": levels,
        **_iou_fields(res, edges),
        "boxes_without_positive": int(no_pos.sum()),
        "boxes_ignored_only": 0,
        "boxes_below_negative": int(no_pos.sum()),
        "boxes_below_positive_iou": None,  # no IoU: the ratio test assigns (vocabulary: boxes_without_positive)
        "coverage": {"by_class": cov_class, "by_size": cov_size, "size_groups_by": size_by},
        "spatial": _spatial(preset, res, lb, ph, pw, int(spatial_bins)),
        "autoanchor": aa,
        "images_without_boxes": int(np.sum(np.bincount(bimg, minlength=n_img) == 0)) if n_img else 0,
        "dense_fallback_images": 0,
        "notes": [
            "foreground = distinct positive anchors; per-class, per-level and per-box positives count "
            "build_targets entries (box, anchor, cell)",
            "IoU fields hold the width/height ratio metric, threshold 1/anchor_t",
        ],
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _anchor_counts(res, per_img_anchors: np.ndarray, n_img: int, C: int) -> tuple[dict, dict]:
    """The report's anchor totals (foreground: distinct positive anchors) and its two positive-negative ratios."""

    total = int(per_img_anchors.sum())
    entries = int(len(res.pos_box))
    distinct = _distinct_positives(res, per_img_anchors) if entries else 0
    bg = total - distinct
    n = max(n_img, 1)
    counts = {
        "anchors": total,
        "foreground": distinct,
        "foreground_entries": entries,
        "background": bg,
        "ignored": 0,
        "per_image": {"anchors": total / n, "foreground": distinct / n, "background": bg / n, "ignored": 0.0},
    }
    pos_neg = distinct / bg if bg > 0 else None
    neg_tasks = distinct * (C - 1) + bg * C
    task = distinct / neg_tasks if neg_tasks > 0 else None
    ratios = {
        "pos_neg_ratio": pos_neg,
        "task_pos_neg_ratio": task,
    }
    return counts, ratios


def _distinct_positives(res, per_img_anchors: np.ndarray) -> int:
    """Distinct positive anchors: build_targets entries of one (image, anchor) counted once."""
    key = res.pos_image.astype(np.int64) * (int(per_img_anchors.max(initial=1)) + 1) + res.pos_anchor
    return int(len(unique_ints(key)))


def _coverage(no_pos: np.ndarray, sg: np.ndarray, cat_of_box: np.ndarray, inst: np.ndarray, cat_ids: list) -> tuple:
    """The ``coverage`` block's ``(by_class, by_size)``: boxes without a positive (YOLOv5 ignores no anchor, so
    ``below_negative`` is ``without_positive``)."""
    cov_size = {
        g: {
            "boxes": int((sg == i).sum()),
            "without_positive": int((no_pos & (sg == i)).sum()),
            "ignored_only": 0,
            "below_negative": int((no_pos & (sg == i)).sum()),
        }
        for i, g in enumerate(SIZE_GROUPS)
    }
    wp = np.bincount(cat_of_box[no_pos], minlength=len(cat_ids))
    cov_class = {
        cid: {"boxes": int(inst[k]), "without_positive": int(wp[k]), "ignored_only": 0, "below_negative": int(wp[k])}
        for k, cid in enumerate(cat_ids)
        if inst[k]
    }
    return cov_class, cov_size


def _iou_fields(res, edges: np.ndarray) -> dict:
    """The IoU histograms' fields, of the width/height ratio metric (no negative IoU: YOLOv5 ignores no anchor)."""
    return {
        "positive_iou": {
            "edges": edges.tolist(),
            "counts": iou_counts(res.pos_iou.astype(np.float64), edges).tolist(),
            "low_quality": 0,
        },
        "negative_iou": {},
        "box_max_iou": {
            "edges": edges.tolist(),
            "counts": iou_counts(res.box_max_iou.astype(np.float64), edges).tolist(),
        },
    }


def _box_arrays(order, res, per_box: np.ndarray, sg: np.ndarray, lb, preset: YoloV5Preset) -> dict:
    """The per-box arrays, as :func:`imbalance_cli.stats.anchors.anchor_statistics` fills ``box_arrays``."""
    return dict(
        order=order,
        max_iou=res.box_max_iou,
        best_level=np.asarray(res.box_best_level, np.int64),
        positives=per_box,
        ignored=np.zeros(len(order), np.int32),
        size_group=sg,
        scaled=lb,
        preset=preset,
    )


def _assigner_fields(preset: YoloV5Preset) -> dict:
    """The report's fields naming the assignment (build_targets) and its thresholds."""
    thr = preset.pos_iou
    return {
        "preset": preset.name,
        "matcher": "yolov5",
        "device": "cpu",
        "engine": "yolov5",
        "assigner": "ultralytics/yolov5 utils/loss.py ComputeLoss.build_targets",
        "letterbox": f"letterbox(auto=True) to {preset.img_size}, padded to a multiple of {preset.pad_stride}",
        "thresholds": {
            "pos_iou": float(thr),
            "neg_iou": float(thr),
            "allow_low_quality": False,
            "anchor_t": float(preset.anchor_t),
            "offset_g": float(preset.offset_g),
        },
        "iou_meaning": "width/height ratio metric min(min(r, 1/r)) (AutoAnchor), threshold 1/anchor_t",
    }


def _class_fields(cat_ids: list, pos_per_class: np.ndarray, inst: np.ndarray, names, n: int) -> dict:
    """The per-class fields: positives (build_targets entries), per image and per instance, instances, names."""
    return {
        "per_class_positive": {cid: int(v) for cid, v in zip(cat_ids, pos_per_class)},
        "per_class_positive_per_image": {cid: int(v) / n for cid, v in zip(cat_ids, pos_per_class)},
        "positives_per_instance": {cid: int(p) / int(i) for cid, p, i in zip(cat_ids, pos_per_class, inst) if i},
        "instances_per_class": {cid: int(i) for cid, i in zip(cat_ids, inst)},
        "class_names": {cid: str(nm) for cid, nm in zip(cat_ids, names)},
    }


def _levels(preset: YoloV5Preset, res, ph, pw, n_img: int, n_boxes: int) -> list[dict]:
    """Per output level: its anchors, foreground entries, boxes whose best anchor is there, anchor sizes."""
    L = preset.num_levels
    gh, gw, _ = level_grids(preset, ph, pw)
    per = np.array([preset.anchors_per_location(lv) for lv in range(L)], np.int64)
    lev_anchors = (gh * gw).sum(1) * per if n_img else np.zeros(L, np.int64)
    lev_fg = np.bincount(res.pos_level.astype(np.int64), minlength=L)
    lev_best = np.bincount(res.box_best_level.astype(np.int64), minlength=L) if n_boxes else np.zeros(L, np.int64)
    return [
        {
            "name": preset.level_names[lv],
            "stride": int(preset.strides[lv]),
            "anchors": int(lev_anchors[lv]),
            "foreground": int(lev_fg[lv]),
            "best_level_boxes": int(lev_best[lv]),
            "anchor_sizes": [list(map(float, a)) for a in preset.anchors[lv]],
        }
        for lv in range(L)
    ]


def _autoanchor(dataset: Dataset, order, bimg, preset: YoloV5Preset, seed: int | None) -> dict:
    """AutoAnchor's fit of the preset: every valid label, sizes as ``check_anchors`` builds them."""
    H, W = dataset.heights, dataset.widths
    wh = autoanchor_wh(dataset.boxes[order], H[bimg], W[bimg], preset, seed=seed)
    aa = autoanchor_metric(wh, preset.anchor_array(), preset.anchor_t)
    aa.update(
        {
            "threshold": float(preset.anchor_t),
            "good_fit_bpr": float(preset.bpr_good),
            "good_fit": None if aa["bpr"] is None else bool(aa["bpr"] > preset.bpr_good),
            "random_scale": seed is not None,
            "seed": seed,
            "source": "ultralytics/yolov5 utils/autoanchor.py check_anchors metric()",
        }
    )
    return aa


def yolov5_anchor_counts(
    dataset: Dataset,
    preset: YoloV5Preset = YOLOV5,
    matcher: str | None = None,
    pos_iou: float | None = None,
    neg_iou: float | None = None,
) -> dict:
    """:func:`imbalance_cli.stats.batches.anchor_counts` under YOLOv5's assignment (``batches``, ``compare --anchors``,
    ``check``'s anchor rules): per image ``anchors`` (grid cells x anchors of the letterboxed input),
    ``foreground`` (distinct anchors with an objectness target), ``ignored`` (zeros) and ``background``;
    ``per_class_positive`` counts build_targets entries per class; boxes without any entry.
    """
    order, _bimg, ph, pw, _lb, res = _assigned(dataset, preset, matcher, pos_iou, neg_iou)
    n_img = dataset.num_images
    per_anchors = num_anchors(preset, ph, pw).astype(np.int64)
    fg = np.zeros(n_img, np.int64)
    if len(res.pos_box):
        key = unique_ints(res.pos_image.astype(np.int64) * (int(per_anchors.max(initial=1)) + 1) + res.pos_anchor)
        fg = np.bincount(key // (int(per_anchors.max(initial=1)) + 1), minlength=n_img).astype(np.int64)
    has_pos = np.zeros(len(order), bool)
    has_pos[res.pos_box] = True
    return {
        "preset": preset.name,
        "anchors": per_anchors,
        "foreground": fg,
        "ignored": np.zeros(n_img, np.int64),
        "background": per_anchors - fg,
        "foreground_total": int(fg.sum()),
        "background_total": int((per_anchors - fg).sum()),
        "per_class_positive": np.bincount(
            dataset.box_category[order][res.pos_box], minlength=dataset.num_categories
        ).astype(np.int64),
        "boxes": int(len(order)),
        "boxes_without_positive": int((~has_pos).sum()),
        "box_without_positive": order[~has_pos],
    }


def _spatial(preset: YoloV5Preset, res, lb: np.ndarray, ph: np.ndarray, pw: np.ndarray, bins: int) -> dict:
    """Fig. 14 for YOLOv5: each entry's anchor box (centred on its cell) top-left corner in its box's frame."""
    lo, hi = SPATIAL_RANGE
    counts = np.zeros((bins, bins), np.int64)
    outside = 0
    P = len(res.pos_box)
    if P:
        img = res.pos_image.astype(np.int64)
        lvl = res.pos_level.astype(np.int64)
        _gh, gw, off = level_grids(preset, ph, pw)
        within = res.pos_anchor - off[lvl, img]
        A = np.array([preset.anchors_per_location(lv) for lv in range(preset.num_levels)], np.int64)[lvl]
        cell, k = np.divmod(within, A)
        gwl = gw[lvl, img]
        i, j = np.divmod(cell, gwl)
        stride = np.asarray(preset.strides, np.float64)[lvl]
        anc = np.array([a for lv in preset.anchors for a in lv], np.float64)
        first = np.concatenate([[0], np.cumsum([len(a) for a in preset.anchors])])[lvl]
        aw, ah = anc[first + k, 0], anc[first + k, 1]
        ax1 = (j + 0.5) * stride - aw / 2
        ay1 = (i + 0.5) * stride - ah / 2
        g = lb[res.pos_box]
        rx = (ax1 - g[:, 0]) / (g[:, 2] - g[:, 0])
        ry = (ay1 - g[:, 1]) / (g[:, 3] - g[:, 1])
        inside = (rx >= lo) & (rx <= hi) & (ry >= lo) & (ry <= hi)
        outside = int(P - inside.sum())
        scale = bins / (hi - lo)
        bx = np.minimum(((rx[inside] - lo) * scale).astype(np.int64), bins - 1)
        by = np.minimum(((ry[inside] - lo) * scale).astype(np.int64), bins - 1)
        counts = np.bincount(by * bins + bx, minlength=bins * bins).reshape(bins, bins).astype(np.int64)
    return {
        "bins": bins,
        "range": [lo, hi],
        "edges": np.linspace(lo, hi, bins + 1).tolist(),
        "counts": counts.tolist(),
        "outside": outside,
    }
