"""Static assigners that do not threshold a max-IoU: ATSS and FCOS, as mmdetection implements them.

Both are computed from annotations alone (no predictions), image by image, over the anchors or points
that :mod:`imbalance_cli.anchors.generator` lays for the preset; the result is the engine-neutral
:class:`~imbalance_cli.anchors.rules.MatchOutput`, so every anchor statistic is reported the same
way ("foreground / background" counted over the assigner's anchors or points; nothing is ignored).

* ``atss`` -- Zhang et al., "Bridging the Gap Between Anchor-based and Anchor-free Detection via
  Adaptive Training Sample Selection", CVPR 2020, Alg. 1; mmdetection ``ATSSAssigner.assign``
  (mmdet/models/task_modules/assigners/atss_assigner.py): per box and level the ``topk`` anchors whose
  centres are nearest (L2) to the box centre are candidates; the IoU threshold is the candidates' mean
  plus their (unbiased) standard deviation; a candidate is positive when its IoU reaches the threshold
  and its centre lies inside the box by more than 0.01 on every side; an anchor positive for several
  boxes takes the one of highest IoU (first box on ties). The candidates are chosen by the very
  call mmdetection makes, ``torch.topk(k, dim=0, largest=False)`` on the CPU over the same float32
  (anchors x boxes) distance matrix sliced per level, so exact distance ties at the k-th place fall
  as there (that call does not always keep the lowest anchor index; on a GPU torch's ``topk`` may
  break such ties differently, so mmdetection on a GPU can differ from its own CPU run).
* ``fcos`` -- Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection", ICCV 2019, Sec. 3.1-3.2
  (with the centre sampling of the improved FCOS); mmdetection ``FCOSHead._get_targets_single``
  (mmdet/models/dense_heads/fcos_head.py): a point is a candidate for a box when it lies inside the
  box's centre region (box centre +- ``center_radius`` x stride, clipped to the box; the whole box when
  the radius is 0) and ``max(l, t, r, b)`` lies in its level's regression range (both ends included);
  a point with several candidate boxes takes the one of smallest area (first on ties). Points have no
  IoU: ``pos_iou`` and ``box_max_iou`` are NaN.

All arithmetic is float32 like the frameworks'. Prediction-dependent assigners (TOOD's task-aligned
assigner, YOLOX's SimOTA) need the detector's scores and boxes and cannot be computed here.
"""

from __future__ import annotations

import numpy as np

from imbalance_cli.anchors.generator import F32, grid_anchors_numpy, level_layout
from imbalance_cli.anchors.presets import FCOS_INF, AnchorPreset
from imbalance_cli.anchors.rules import MatchOutput, register_assigner

_IDX = np.int32


def _iou_matrix(anchors: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(A, M) float32 IoU as mmdetection ``bbox_overlaps`` (union clamped to eps = 1e-6)."""
    a = anchors[:, None, :]
    g = boxes[None, :, :]
    area1 = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    area2 = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    w = np.maximum(np.minimum(a[..., 2], g[..., 2]) - np.maximum(a[..., 0], g[..., 0]), F32(0))
    h = np.maximum(np.minimum(a[..., 3], g[..., 3]) - np.maximum(a[..., 1], g[..., 1]), F32(0))
    inter = w * h
    union = np.maximum(area1[:, None] + area2[None, :] - inter, F32(1e-6))
    return (inter / union).astype(F32)


def _per_image(preset: AnchorPreset, boxes, box_image, padded_h, padded_w, images, assign_one) -> MatchOutput:
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, np.int64)
    ph = np.asarray(padded_h, np.int64)
    pw = np.asarray(padded_w, np.int64)
    n_img, N = len(ph), len(boxes)
    if N and np.any(np.diff(box_image) < 0):
        raise ValueError("box_image must be sorted ascending")
    start = np.searchsorted(box_image, np.arange(n_img + 1)) if N else np.zeros(n_img + 1, np.int64)
    sel = np.arange(n_img) if images is None else np.asarray(images, np.int64)
    parts = {k: [] for k in ("img", "anchor", "level", "box", "iou")}
    box_max = np.full(N, np.nan, F32)
    box_best = np.zeros(N, np.int64)
    box_best_level = np.zeros(N, np.int64)
    cache: dict = {}
    for im in sel:
        b0, b1 = int(start[im]), int(start[im + 1])
        if b1 == b0:
            continue
        key = (int(ph[im]), int(pw[im]))
        if key not in cache:
            anc, lv = grid_anchors_numpy(preset, *key)
            cache = {key: (anc, lv, [lay.count for lay in level_layout(preset, *key)])}
        anc, lv, counts = cache[key]
        matched, iou, bmax, bbest = assign_one(preset, anc, lv, counts, boxes[b0:b1])
        p = np.flatnonzero(matched >= 0)
        parts["img"].append(np.full(len(p), im))
        parts["anchor"].append(p)
        parts["level"].append(lv[p])
        parts["box"].append(b0 + matched[p])
        parts["iou"].append(iou[p])
        box_max[b0:b1] = bmax
        box_best[b0:b1] = bbest
        box_best_level[b0:b1] = lv[bbest]

    def cat(k, dt):
        return np.concatenate(parts[k]).astype(dt) if parts[k] else np.zeros(0, dt)

    return MatchOutput(
        cat("img", _IDX),
        cat("anchor", np.int64),
        cat("level", np.int8),
        cat("box", _IDX),
        cat("iou", F32),
        np.zeros(n_img, np.int64),
        box_max,
        box_best,
        box_best_level,
        0,
    )


def _topk_per_level(dist: np.ndarray, counts, topk: int) -> list:
    """Per level the ``topk`` nearest anchors of every box, ``(k, M)`` indices each, as ``ATSSAssigner.assign``.

    mmdetection calls ``distances[start:end, :].topk(k, dim=0, largest=False)`` on the float32
    (anchors x boxes) matrix; the same call on the same values (CPU) makes the same choice among
    exactly tied distances, which no stable sort reproduces.
    """
    import torch

    full = torch.from_numpy(np.ascontiguousarray(dist, dtype=F32))
    out, s = [], 0
    for n in counts:
        k = min(topk, int(n))
        if k > 0:
            out.append(full[s : s + n, :].topk(k, dim=0, largest=False).indices.numpy() + s)
        s += n
    return out


def atss_assign_image(preset: AnchorPreset, anchors: np.ndarray, levels: np.ndarray, counts, boxes: np.ndarray):
    """ATSS on one image: ``(matched (A,), iou (A,), box_max_iou (M,), box_best_anchor (M,))``; -1 = negative."""
    A, M = len(anchors), len(boxes)
    ov = _iou_matrix(anchors, boxes)  # (A, M)
    gcx = (boxes[:, 0] + boxes[:, 2]) / F32(2.0)
    gcy = (boxes[:, 1] + boxes[:, 3]) / F32(2.0)
    acx = (anchors[:, 0] + anchors[:, 2]) / F32(2.0)
    acy = (anchors[:, 1] + anchors[:, 3]) / F32(2.0)
    dist = np.sqrt((acx[:, None] - gcx[None, :]) ** 2 + (acy[:, None] - gcy[None, :]) ** 2).astype(F32)
    cand = np.concatenate(_topk_per_level(dist, counts, int(preset.topk)), axis=0)  # (C, M)
    cols = np.arange(M)[None, :]
    cov = ov[cand, cols]
    mean = cov.mean(axis=0, dtype=F32)
    std = cov.std(axis=0, ddof=1, dtype=F32) if len(cand) > 1 else np.full(M, np.nan, F32)
    thr = (mean + std).astype(F32)
    is_pos = cov >= thr[None, :]
    cx, cy = acx[cand], acy[cand]
    inside = np.minimum.reduce(
        [cx - boxes[None, :, 0], cy - boxes[None, :, 1], boxes[None, :, 2] - cx, boxes[None, :, 3] - cy]
    ) > F32(0.01)
    is_pos &= inside
    ov_inf = np.full((A, M), -np.inf, F32)
    ci, gi = np.nonzero(is_pos)
    ov_inf[cand[ci, gi], gi] = ov[cand[ci, gi], gi]
    best = ov_inf.max(axis=1)
    arg = ov_inf.argmax(axis=1)  # first box on ties
    matched = np.where(best != -np.inf, arg, -1)
    iou = np.where(matched >= 0, best, ov.max(axis=1)).astype(F32)
    return matched, iou, ov.max(axis=0), ov.argmax(axis=0)


def fcos_assign_image(preset: AnchorPreset, points: np.ndarray, levels: np.ndarray, counts, boxes: np.ndarray):
    """FCOS targets on one image: ``(matched (P,), iou (P,) NaN, box_max_iou (M,) NaN, box_best (M,))``.

    ``box_best`` is the first point assigned to the box (0 when none).
    """
    xs, ys = points[:, 0], points[:, 1]
    x1, y1, x2, y2 = (boxes[None, :, c] for c in range(4))
    areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))[None, :].repeat(len(points), 0).astype(F32)
    left, right = xs[:, None] - x1, x2 - xs[:, None]
    top, bottom = ys[:, None] - y1, y2 - ys[:, None]
    rr = np.asarray(preset.regress_ranges, np.float64).astype(F32)[levels]  # (P, 2)
    if preset.center_radius > 0:
        stride = (np.asarray(preset.strides, np.float64)[levels] * preset.center_radius).astype(F32)[:, None]
        cx = (x1 + x2) / F32(2)
        cy = (y1 + y2) / F32(2)
        xmin, ymin, xmax, ymax = cx - stride, cy - stride, cx + stride, cy + stride
        c0 = np.where(xmin > x1, xmin, x1)
        c1 = np.where(ymin > y1, ymin, y1)
        c2 = np.where(xmax > x2, x2, xmax)
        c3 = np.where(ymax > y2, y2, ymax)
        inside = np.minimum.reduce([xs[:, None] - c0, ys[:, None] - c1, c2 - xs[:, None], c3 - ys[:, None]]) > 0
    else:
        inside = np.minimum.reduce([left, top, right, bottom]) > 0
    mx = np.maximum.reduce([left, top, right, bottom])
    in_range = (mx >= rr[:, 0:1]) & (mx <= rr[:, 1:2])
    inf = F32(FCOS_INF)
    areas[~inside] = inf
    areas[~in_range] = inf
    amin = areas.min(axis=1)
    arg = areas.argmin(axis=1)  # first box on ties
    matched = np.where(amin == inf, -1, arg)
    M = len(boxes)
    best = np.zeros(M, np.int64)
    p = np.flatnonzero(matched >= 0)
    if len(p):
        first = np.full(M, len(points), np.int64)
        np.minimum.at(first, matched[p], p)
        best = np.where(first < len(points), first, 0)
    return matched, np.full(len(points), np.nan, F32), np.full(M, np.nan, F32), best


def atss(
    preset: AnchorPreset, boxes, box_image, padded_h, padded_w, *, semantics: str = "mmdet", images=None
) -> MatchOutput:
    """ATSS labels of a dataset (see module docstring); ``semantics`` is accepted for a uniform signature."""
    return _per_image(preset, boxes, box_image, padded_h, padded_w, images, atss_assign_image)


def fcos(
    preset: AnchorPreset, boxes, box_image, padded_h, padded_w, *, semantics: str = "mmdet", images=None
) -> MatchOutput:
    """FCOS labels of a dataset (see module docstring); ``semantics`` is accepted for a uniform signature."""
    return _per_image(preset, boxes, box_image, padded_h, padded_w, images, fcos_assign_image)


#: Assigners by preset ``assigner`` name (a plain registry dict); ``max_iou`` is the matcher itself.
ASSIGNERS = {"atss": atss, "fcos": fcos}
for _name, _fn in ASSIGNERS.items():  # the engines look assigners up in the one registry of anchors.rules
    register_assigner(_name, _fn)
