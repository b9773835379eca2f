"""Anchor-to-box matching: one semantics, two engines (dense and culled).

Label convention (torchvision ``Matcher``): ``matched[a] >= 0`` is the index of the box anchor
``a`` is assigned to (a positive), ``-1`` a negative (background), ``-2`` ignored.
IoU is torchvision's ``box_iou`` in float32 and thresholds are compared in float32.

Semantics
---------
``torchvision`` (``Matcher(high, low, allow_low_quality_matches)``)
    each anchor takes its best box (first box on ties); IoU >= ``pos_iou`` positive,
    ``[neg_iou, pos_iou)`` ignored, ``< neg_iou`` negative; with ``allow_low_quality``, for each
    box, every anchor whose IoU equals that box's highest IoU becomes positive, matched to *its
    own* best box (``set_low_quality_matches_``).
``mmdet`` (mmdetection ``MaxIoUAssigner`` with ``min_pos_iou=0``, ``gt_max_assign_all=True``)
    the same thresholds; the low-quality step assigns every anchor tying a box's highest IoU to
    *that* box, boxes taken in order so later boxes override earlier ones.
``ssd`` (torchvision ``SSDMatcher(pos_iou)``)
    IoU >= ``pos_iou`` positive (best box), else negative; then each box's single best anchor
    (lowest anchor index on ties) is forced to that box, later boxes overriding.

Engines
-------
``dense``
    every anchor against every box, in chunks of anchors that bound memory; images batched
    when they share a padded size; runs on any torch device (the CUDA path).
``culled``
    only anchors whose shape (centre-aligned IoU bound) and position (intersection bound
    ``I >= t (A_g + A_a) / (1 + t)``) can reach the enumeration threshold are compared with a
    box. The threshold is ``neg_iou``; a box whose best IoU is below it is enumerated again
    down to a lower bound of its best IoU (the IoU of its nearest anchor of every shape), so
    each box's highest IoU and all its ties are exact. Anchors tying a box's best IoU below
    ``neg_iou`` are compared with every box of their image to find their own best box.
    Images where some box touches no anchor at all (best IoU 0) fall back to the dense engine.
    Background = anchors per image (arithmetic) - positives - ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from imbalance_cli.anchors.generator import (
    F32, anchor_coords, level_grids, level_shape_params, num_anchors,
)
from imbalance_cli.anchors.presets import MATCHER_SEMANTICS, AnchorPreset

ENGINES = ("dense", "culled")
_IDX = np.int32  # image rows and box indices of positives (datasets < 2**31 boxes); keeps 20 M positives small


class MatchResult(NamedTuple):
    """Result of :func:`match` for one image.

    ``matched`` int64 (A,): box index >= 0, -1 negative, -2 ignored. ``iou`` float32 (A,): for a
    positive its IoU with its matched box, otherwise the anchor's best IoU (NaN where the culled
    engine did not need it: such anchors are below ``neg_iou`` with every box).
    ``box_max_iou`` float32 (M,): each box's highest IoU over all anchors.
    """

    matched: "object"
    iou: "object"
    box_max_iou: "object"


def _thresholds(preset, semantics: str, pos_iou, neg_iou, allow_low_quality) -> tuple[float, float, bool]:
    """Positive/negative IoU thresholds and the low-quality flag both engines use (one semantics).

    Overrides win over the preset; SSD's matcher has no ignored band (negative threshold = positive).
    """
    pos = float(preset.pos_iou if pos_iou is None else pos_iou)
    neg = float(preset.neg_iou if neg_iou is None else neg_iou)
    if semantics == "ssd":
        neg = pos
    lowq = preset.allow_low_quality if allow_low_quality is None else bool(allow_low_quality)
    return pos, neg, lowq


def _check(semantics: str, engine: str) -> None:
    if semantics not in MATCHER_SEMANTICS:
        raise ValueError(f"matcher semantics must be one of {MATCHER_SEMANTICS}, got {semantics!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


# ----------------------------------------------------------------------------------------------
# dense engine (torch, any device)
# ----------------------------------------------------------------------------------------------

def _batched_iou(boxes, anchors):
    """IoU (B, M, C) of boxes (B, M, 4) with anchors (C, 4), torchvision ``box_iou`` arithmetic.

    Per coordinate axis (no (B, M, C, 2) temporaries); every element sees the same float32
    operations as ``box_iou``: ``inter / (area_box + area_anchor - inter)``.
    """
    area1 = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area2 = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    b = boxes[:, :, None, :]
    iw = (b[..., 2].minimum(anchors[:, 2]) - b[..., 0].maximum(anchors[:, 0])).clamp_(min=0)
    ih = (b[..., 3].minimum(anchors[:, 3]) - b[..., 1].maximum(anchors[:, 1])).clamp_(min=0)
    inter = iw.mul_(ih)
    union = area1[:, :, None] + area2[None, None, :] - inter
    return inter.div_(union)


class DenseOutput(NamedTuple):
    """Batched dense result: matched (B, A), iou (B, A) (IoU with the matched box for positives,
    best IoU otherwise), anchor_max (B, A) best IoU of each anchor (-1 when the image has no box),
    box_max (B, M), box_best (B, M) first anchor index attaining ``box_max``."""

    matched: "object"
    iou: "object"
    anchor_max: "object"
    box_max: "object"
    box_best: "object"


def dense_match_batched(anchors, boxes, valid, pos_iou: float, neg_iou: float, allow_low_quality: bool = True,
                        semantics: str = "torchvision", max_elements: int = 1 << 24) -> DenseOutput:
    """Dense matcher over a batch of images sharing one anchor set.

    ``anchors`` (A, 4), ``boxes`` (B, M, 4) padded with anything where ``valid`` (B, M) is False.
    Anchors are processed in chunks so that at most ``max_elements`` IoU values exist at a time;
    when more than one chunk is needed the low-quality pass recomputes the IoU chunk by chunk.
    """
    import torch

    _check(semantics, "dense")
    dev = anchors.device
    B, M = boxes.shape[0], boxes.shape[1]
    A = anchors.shape[0]
    hi = torch.tensor(pos_iou, dtype=torch.float32, device=dev)
    lo = torch.tensor(neg_iou, dtype=torch.float32, device=dev)
    boxes = boxes.to(torch.float32)
    anchors = anchors.to(torch.float32)
    if M == 0 or A == 0:
        z = torch.full((B, A), -1, dtype=torch.int64, device=dev)
        return DenseOutput(z, torch.full((B, A), -1.0, device=dev), torch.full((B, A), -1.0, device=dev),
                           torch.zeros((B, M), device=dev), torch.zeros((B, M), dtype=torch.int64, device=dev))
    chunk = max(1, min(A, max_elements // max(1, B * M)))
    neg_fill = torch.tensor(-1.0, device=dev)
    amax = torch.empty((B, A), dtype=torch.float32, device=dev)
    aarg = torch.empty((B, A), dtype=torch.int64, device=dev)
    gmax = torch.full((B, M), -1.0, dtype=torch.float32, device=dev)
    gbest = torch.zeros((B, M), dtype=torch.int64, device=dev)
    kept = None
    for s in range(0, A, chunk):
        iou = _batched_iou(boxes, anchors[s:s + chunk])
        iou = torch.where(valid[:, :, None], iou, neg_fill)
        if chunk >= A:
            kept = iou
        v, ix = iou.max(dim=1)
        amax[:, s:s + chunk] = v
        aarg[:, s:s + chunk] = ix
        cv, cix = iou.max(dim=2)
        better = cv > gmax  # strict: earlier chunks win ties (first index)
        gmax = torch.where(better, cv, gmax)
        gbest = torch.where(better, cix + s, gbest)
    has_box = valid.any(dim=1)[:, None]
    if semantics == "mmdet":
        matched = torch.full((B, A), -2, dtype=torch.int64, device=dev)
        matched = torch.where(amax < lo, torch.full_like(matched, -1), matched)
        matched = torch.where(amax >= hi, aarg, matched)
    else:
        matched = aarg.clone()
        low = hi if semantics == "ssd" else lo
        matched = torch.where(amax < low, torch.full_like(matched, -1), matched)
        if semantics == "torchvision":
            between = (amax >= lo) & (amax < hi)
            matched = torch.where(between, torch.full_like(matched, -2), matched)
    if semantics in ("torchvision", "mmdet") and allow_low_quality:
        order = torch.arange(1, M + 1, device=dev)[None, :, None]
        for s in range(0, A, chunk):
            iou = kept if kept is not None else torch.where(valid[:, :, None], _batched_iou(boxes, anchors[s:s + chunk]), neg_fill)
            tie = (iou == gmax[:, :, None]) & valid[:, :, None]
            if semantics == "torchvision":
                upd = tie.any(dim=1)
                matched[:, s:s + chunk] = torch.where(upd, aarg[:, s:s + chunk], matched[:, s:s + chunk])
            else:
                last = (tie * order).max(dim=1).values - 1
                matched[:, s:s + chunk] = torch.where(last >= 0, last, matched[:, s:s + chunk])
    elif semantics == "ssd":
        src = torch.where(valid, torch.arange(M, device=dev)[None, :].expand(B, M), torch.full((B, M), -1, device=dev, dtype=torch.int64))
        forced = torch.full((B, A), -1, dtype=torch.int64, device=dev)
        forced.scatter_reduce_(1, gbest, src, reduce="amax", include_self=True)
        matched = torch.where(forced >= 0, forced, matched)
    matched = torch.where(has_box, matched, torch.full_like(matched, -1))
    # IoU with the matched box for positives (differs from amax only for mmdet/ssd overrides)
    pos = matched >= 0
    iou_out = amax.clone()
    if semantics != "torchvision" and bool(pos.any()):
        bi, ai = torch.nonzero(pos & (matched != aarg), as_tuple=True)
        if bi.numel():
            mi = matched[bi, ai]
            # IoU of a forced/overridden anchor with its box equals that box's max IoU
            iou_out[bi, ai] = gmax[bi, mi]
    return DenseOutput(matched, iou_out, amax, gmax, gbest)


# ----------------------------------------------------------------------------------------------
# culled engine (numpy, CPU), dataset level
# ----------------------------------------------------------------------------------------------

@dataclass
class CulledOutput:
    """Dataset-level result of the culled (or dense) engine, everything as numpy.

    Positives: ``pos_image`` (image row, int32), ``pos_anchor`` (anchor index within its image, int64),
    ``pos_level`` (int8), ``pos_box`` (index into the boxes passed in, int32), ``pos_iou`` (IoU with
    matched box, float32).
    ``ignored_per_image`` (n_img,); ``box_max_iou`` / ``box_best_anchor`` / ``box_best_level`` (N,):
    each box's highest IoU and the first anchor (lowest index) attaining it.
    """

    pos_image: np.ndarray
    pos_anchor: np.ndarray
    pos_level: np.ndarray
    pos_box: np.ndarray
    pos_iou: np.ndarray
    ignored_per_image: np.ndarray
    box_max_iou: np.ndarray
    box_best_anchor: np.ndarray
    box_best_level: np.ndarray
    fallback_images: int = 0


class _Shapes:
    """Flattened (level, base shape) table of a preset for one padded size."""

    def __init__(self, preset: AnchorPreset, ph: int, pw: int):
        lv, kk, ox, oy, wa, ha, sx, sy, stride = [], [], [], [], [], [], [], [], []
        for lvl in range(preset.num_levels):
            p = level_shape_params(preset, lvl, ph, pw)
            n = len(p[2])
            lv.append(np.full(n, lvl)); kk.append(np.arange(n))
            ox.append(p[0]); oy.append(p[1]); wa.append(p[2]); ha.append(p[3])
            sx.append(np.full(n, p[4])); sy.append(np.full(n, p[5])); stride.append(np.full(n, preset.strides[lvl]))
        cat = np.concatenate
        self.level, self.k = cat(lv).astype(np.int64), cat(kk).astype(np.int64)
        self.ox, self.oy, self.wa, self.ha = cat(ox), cat(oy), cat(wa), cat(ha)
        self.sx, self.sy, self.stride = cat(sx), cat(sy), cat(stride).astype(np.int64)
        self.area = self.wa * self.ha
        self.per_loc = np.array([preset.anchors_per_location(lvl) for lvl in range(preset.num_levels)], np.int64)
        self.slack = 1e-2 if preset.kind == "ssd" else 1e-6
        # grid presets: exact float32 base coordinates per shape, for a loop-free gather
        self.base = None
        if preset.kind == "grid" and not (preset.anchor_rule == "detectron2" and preset.center_offset):
            from imbalance_cli.anchors.generator import base_anchors
            self.base = np.concatenate([base_anchors(preset, lvl) for lvl in range(preset.num_levels)]).astype(F32)


def _iou32(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Aligned float32 IoU with torchvision ``box_iou`` arithmetic (g = box, a = anchor)."""
    area1 = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    area2 = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    w = np.minimum(g[:, 2], a[:, 2]) - np.maximum(g[:, 0], a[:, 0])
    h = np.minimum(g[:, 3], a[:, 3]) - np.maximum(g[:, 1], a[:, 1])
    inter = np.maximum(w, F32(0)) * np.maximum(h, F32(0))
    return inter / (area1 + area2 - inter)


def _coords(preset: AnchorPreset, level, k, i, j, ph, pw) -> np.ndarray:
    out = np.empty((len(level), 4), dtype=F32)
    for lvl in np.unique(level):
        m = level == lvl
        out[m] = anchor_coords(preset, int(lvl), k[m], i[m], j[m],
                               ph[m] if np.ndim(ph) else ph, pw[m] if np.ndim(pw) else pw)
    return out


class _Layouts:
    """Per-image level geometry: grid sizes and level offsets, by arithmetic."""

    def __init__(self, preset: AnchorPreset, ph: np.ndarray, pw: np.ndarray):
        L = preset.num_levels
        self.gh, self.gw, self.sy, self.sx = level_grids(preset, ph, pw)  # (n, L) grid sizes and steps
        per_loc = np.array([preset.anchors_per_location(lv) for lv in range(L)], np.int64)
        counts = self.gh * self.gw * per_loc[None, :]
        self.offset = np.zeros_like(counts)
        if L > 1:
            self.offset[:, 1:] = np.cumsum(counts, axis=1)[:, :-1]
        self.per_loc = per_loc
        self.counts = counts


def _expand(counts: np.ndarray):
    """For segment lengths ``counts``: (segment index, offset within segment) of every element."""
    total = int(counts.sum())
    seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return seg, np.arange(total, dtype=np.int64) - starts[seg]


def _enumerate(preset, shapes: _Shapes, lay: _Layouts, gb: np.ndarray, gimg: np.ndarray, t: np.ndarray,
               ph: np.ndarray, pw: np.ndarray, box_ids: np.ndarray):
    """Candidate (box, anchor) pairs with IoU >= t[box] (float32 compare), with exact float32 IoU.

    Three stages, each a necessary condition of IoU >= t (with a small conservative margin):
    (box, shape) pairs whose centre-aligned IoU reaches t; grid rows whose exact intersection
    height allows an intersection of ``t (A_g + A_a) / (1 + t)``; columns of each row with an
    intersection width large enough. Returns a dict of arrays, box-major.
    """
    g = gb.astype(np.float64)
    wg, hg = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    ag = wg * hg
    tt = t.astype(np.float64) * (1 - 1e-5) - 1e-7  # conservative against float32 rounding
    # -- stage 1: (box, shape) pairs
    iw0 = np.minimum(wg[:, None], shapes.wa[None, :])
    ih0 = np.minimum(hg[:, None], shapes.ha[None, :])
    inter0 = iw0 * ih0
    ub = inter0 / (ag[:, None] + shapes.area[None, :] - inter0)
    bi, si = np.nonzero(ub >= tt[:, None])
    if len(bi) == 0:
        return None
    tb = tt[bi]
    imin = np.maximum(tb / (1 + tb), 0) * (ag[bi] + shapes.area[si])
    my = imin / iw0[bi, si]
    lvl = shapes.level[si]
    img = gimg[bi]
    slack = shapes.slack
    oy, ha, sy = shapes.oy[si], shapes.ha[si], lay.sy[img, lvl]
    i_lo = np.maximum(np.ceil((g[bi, 1] + my - ha - oy - slack) / sy), 0).astype(np.int64)
    i_hi = np.minimum(np.floor((g[bi, 3] - my - oy + slack) / sy), lay.gh[img, lvl] - 1).astype(np.int64)
    ni = np.maximum(i_hi - i_lo + 1, 0)
    # -- stage 2: rows
    pr, off = _expand(ni)
    if len(pr) == 0:
        return None
    rb, rs = bi[pr], si[pr]
    ri = i_lo[pr] + off
    rimg = img[pr]
    if shapes.base is not None:
        syi = (ri * lay.sy[rimg, shapes.level[rs]]).astype(F32)
        ry1 = syi + shapes.base[rs, 1]
        ry2 = syi + shapes.base[rs, 3]
    else:
        c = _coords(preset, shapes.level[rs], shapes.k[rs], ri, np.zeros_like(ri), ph[rimg], pw[rimg])
        ry1, ry2 = c[:, 1], c[:, 3]
    gbr = gb[rb]
    ih32 = np.minimum(gbr[:, 3], ry2) - np.maximum(gbr[:, 1], ry1)
    ih = ih32.astype(np.float64)
    with np.errstate(divide="ignore"):
        mx = np.where(ih > 0, imin[pr] / np.where(ih > 0, ih, 1), np.inf)
    ox, wa, sx = shapes.ox[rs], shapes.wa[rs], lay.sx[rimg, shapes.level[rs]]
    j_lo = np.maximum(np.ceil((gbr[:, 0] + mx - wa - ox - slack) / sx), 0)
    j_hi = np.minimum(np.floor((gbr[:, 2] - mx - ox + slack) / sx), lay.gw[rimg, shapes.level[rs]] - 1)
    nj = np.where(np.isfinite(j_lo) & np.isfinite(j_hi), np.maximum(j_hi - j_lo + 1, 0), 0).astype(np.int64)
    j_lo = np.where(nj > 0, j_lo, 0).astype(np.int64)
    # -- stage 3: candidates
    cr, coff = _expand(nj)
    if len(cr) == 0:
        return None
    cj = j_lo[cr] + coff
    if shapes.base is not None:
        sxj = (cj * sx[cr]).astype(F32)
        x1a = sxj + shapes.base[rs, 0][cr]
        x2a = sxj + shapes.base[rs, 2][cr]
    else:
        c = _coords(preset, shapes.level[rs][cr], shapes.k[rs][cr], np.zeros_like(cj), cj, ph[rimg][cr], pw[rimg][cr])
        x1a, x2a = c[:, 0], c[:, 2]
    # IoU with torchvision's arithmetic: union = area_box + area_anchor - inter
    area_a = (x2a - x1a) * (ry2 - ry1)[cr]
    area_g = ((gbr[:, 2] - gbr[:, 0]) * (gbr[:, 3] - gbr[:, 1]))[cr]
    iw = np.minimum(gbr[:, 2][cr], x2a) - np.maximum(gbr[:, 0][cr], x1a)
    inter = np.maximum(iw, F32(0)) * np.maximum(ih32, F32(0))[cr]
    iou = inter / (area_g + area_a - inter)
    ok = np.flatnonzero(iou >= t[rb][cr])
    cr, cj, iou, x1a, x2a = cr[ok], cj[ok], iou[ok], x1a[ok], x2a[ok]
    cb, cs, ci, cimg = rb[cr], rs[cr], ri[cr], rimg[cr]
    cl = shapes.level[cs]
    anchor = lay.offset[cimg, cl] + (ci * lay.gw[cimg, cl] + cj) * lay.per_loc[cl] + shapes.k[cs]
    coords = np.stack((x1a, ry1[cr], x2a, ry2[cr]), axis=1)
    return {"box": box_ids[cb], "local": cb, "img": cimg, "anchor": anchor, "level": cl, "iou": iou, "coords": coords}


def _group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))


def _nearest_lower_bound(preset, shapes: _Shapes, lay: _Layouts, gb: np.ndarray, gimg, ph, pw) -> np.ndarray:
    """A lower bound of each box's best IoU: the IoU of its nearest anchor of every shape (max)."""
    n = len(gb)
    S = len(shapes.level)
    g = gb.astype(np.float64)
    cx, cy = (g[:, 0] + g[:, 2]) / 2, (g[:, 1] + g[:, 3]) / 2
    bi = np.repeat(np.arange(n), S)
    si = np.tile(np.arange(S), n)
    lvl = shapes.level[si]
    img = gimg[bi]
    j = np.rint((cx[bi] - shapes.ox[si] - shapes.wa[si] / 2) / lay.sx[img, lvl]).astype(np.int64)
    i = np.rint((cy[bi] - shapes.oy[si] - shapes.ha[si] / 2) / lay.sy[img, lvl]).astype(np.int64)
    j = np.clip(j, 0, lay.gw[img, lvl] - 1)
    i = np.clip(i, 0, lay.gh[img, lvl] - 1)
    a = _coords(preset, lvl, shapes.k[si], i, j, ph[img], pw[img])
    iou = _iou32(gb[bi], a).reshape(n, S)
    return iou.max(axis=1)


def culled_match_dataset(preset: AnchorPreset, boxes: np.ndarray, box_image: np.ndarray, padded_h: np.ndarray,
                         padded_w: np.ndarray, *, pos_iou: float | None = None, neg_iou: float | None = None,
                         allow_low_quality: bool | None = None, semantics: str = "torchvision",
                         chunk_boxes: int = 10000, threads: int | None = None) -> CulledOutput:
    """Culled matcher over a whole dataset at once (see module docstring).

    ``boxes`` float32 (N, 4) in resized-image pixels, ``box_image`` (N,) image rows **sorted
    ascending** (a box's position among its image's boxes is its gt index), ``padded_h/w``
    (n_img,) padded sizes. Returns a :class:`CulledOutput` whose ``pos_box`` index ``boxes``.
    Chunks of about ``chunk_boxes`` boxes (whole images) run on ``threads`` threads (default: CPU
    count); the output does not depend on either.
    """
    _check(semantics, "culled")
    pos, neg, lowq = _thresholds(preset, semantics, pos_iou, neg_iou, allow_low_quality)
    pos, neg = F32(pos), F32(neg)
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, dtype=np.int64)
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    n_img, N = len(ph), len(boxes)
    if N and np.any(np.diff(box_image) < 0):
        raise ValueError("box_image must be sorted ascending")
    lay = _Layouts(preset, ph, pw)
    # shape tables: grid presets do not depend on the image size; ssd uses one fixed size
    shapes = _Shapes(preset, int(ph[0]) if n_img else 1, int(pw[0]) if n_img else 1)
    if preset.kind == "ssd" and n_img and (np.any(ph != ph[0]) or np.any(pw != pw[0])):
        raise ValueError("ssd presets need one fixed image size")
    out_parts: list[dict] = []
    box_max = np.zeros(N, F32)
    box_best = np.zeros(N, np.int64)
    box_best_level = np.zeros(N, np.int64)
    ignored = np.zeros(n_img, np.int64)
    fallback_imgs: list[int] = []
    # chunk on image boundaries
    img_start = np.searchsorted(box_image, np.arange(n_img + 1)) if N else np.zeros(n_img + 1, np.int64)
    first_box_of_img = img_start
    bounds = [0]
    while bounds[-1] < N:
        target = min(N, bounds[-1] + chunk_boxes)
        if target < N:
            target = int(img_start[box_image[target]])  # start of that image
            if target <= bounds[-1]:
                target = int(img_start[box_image[bounds[-1]] + 1])
        bounds.append(target)
    def _chunk(c0: int, c1: int):
        out_parts: list[dict] = []
        gb = boxes[c0:c1]
        gimg = box_image[c0:c1]
        ids = np.arange(c0, c1, dtype=np.int64)
        nb = c1 - c0
        t = np.full(nb, neg, dtype=F32)
        cand = _enumerate(preset, shapes, lay, gb, gimg, t, ph, pw, ids)
        if cand is None:
            cand = {k: np.zeros(0, dt) for k, dt in (("box", np.int64), ("local", np.int64), ("img", np.int64), ("anchor", np.int64), ("level", np.int64), ("iou", F32))}
            cand["coords"] = np.zeros((0, 4), F32)
        gmax = np.full(nb, -1.0, dtype=F32)
        _segmax(gmax, cand["local"], cand["iou"])
        low = np.flatnonzero(gmax < neg)
        second = None
        if len(low):
            L = _nearest_lower_bound(preset, shapes, lay, gb[low], gimg[low], ph, pw)
            zero = L <= 0
            if zero.any():
                fallback_imgs.extend(np.unique(gimg[low[zero]]).tolist())
            ok = ~zero
            if ok.any():
                sel = low[ok]
                t2 = L[ok].astype(F32)
                second = _enumerate(preset, shapes, lay, gb[sel], gimg[sel], t2, ph, pw, ids[sel])
                if second is not None:
                    second["local"] = sel[second["local"]]
                    _segmax(gmax, second["local"], second["iou"])
        # ---- each box's best IoU, ties (all anchors attaining it) and first best anchor
        def ties_of(cd):
            m = cd["iou"] == gmax[cd["local"]]
            return {k: v[m] for k, v in cd.items()}
        tie_parts = [ties_of(cand)] + ([ties_of(second)] if second is not None else [])
        tie = {k: np.concatenate([p[k] for p in tie_parts]) for k in tie_parts[0]}
        # first (lowest index) tie anchor per box
        o = np.lexsort((tie["anchor"], tie["local"]))
        tl = tie["local"][o]
        st = _group_starts(tl)
        box_best[c0 + tl[st]] = tie["anchor"][o][st]
        box_best_level[c0 + tl[st]] = tie["level"][o][st]
        box_max[c0:c1] = gmax
        # ---- per-anchor best box among candidates with IoU >= neg (exact: every such box enumerated it)
        # composite key (image row, anchor index); anchors per image < 2**40
        key = (cand["img"] << 40) | cand["anchor"]
        o = np.argsort(key, kind="stable")
        ks = key[o]
        st = _group_starts(ks)
        iou_s = cand["iou"][o]
        amax = np.maximum.reduceat(iou_s, st) if len(st) else np.zeros(0, F32)
        grp = np.repeat(np.arange(len(st)), np.diff(np.append(st, len(ks))))
        posn = np.where(iou_s == amax[grp], np.arange(len(ks)), len(ks))
        first = np.minimum.reduceat(posn, st) if len(st) else np.zeros(0, np.int64)
        a_key = ks[st]
        a_box = cand["box"][o][first]
        a_img = cand["img"][o][st]
        a_anchor = cand["anchor"][o][st]
        a_level = cand["level"][o][st]
        # labels before the low-quality step
        a_match = np.where(amax >= pos, a_box, -2)
        a_iou = amax.copy()
        # ---- low-quality / forced matches
        if len(tie["box"]) and (semantics == "ssd" or lowq):
            t_key = (tie["img"] << 40) | tie["anchor"]
            if semantics == "ssd":
                # each box's single best anchor (lowest index), later boxes override
                f = _first_per_box(tie)
                fk, fb, fi = t_key[f], tie["box"][f], gmax[tie["local"][f]]
                ord2 = np.lexsort((fb, fk))
                fk, fb, fi = fk[ord2], fb[ord2], fi[ord2]
                last = np.append(fk[1:] != fk[:-1], True)
                upd_key, upd_box, upd_iou = fk[last], fb[last], fi[last]
            elif semantics == "mmdet":
                ord2 = np.lexsort((tie["box"], t_key))
                tk, tb = t_key[ord2], tie["box"][ord2]
                ti = gmax[tie["local"][ord2]]
                last = np.append(tk[1:] != tk[:-1], True)
                upd_key, upd_box, upd_iou = tk[last], tb[last], ti[last]
            else:  # torchvision: tie anchors take their own best box
                u_key, u_idx = np.unique(t_key, return_index=True)
                known = np.searchsorted(a_key, u_key)
                known = np.minimum(known, max(len(a_key) - 1, 0))
                is_known = (len(a_key) > 0) & (a_key[known] == u_key) if len(a_key) else np.zeros(len(u_key), bool)
                upd_key = u_key
                upd_box = np.empty(len(u_key), np.int64)
                upd_iou = np.empty(len(u_key), F32)
                upd_box[is_known] = a_box[known[is_known]]
                upd_iou[is_known] = amax[known[is_known]]
                unk = np.flatnonzero(~is_known)
                if len(unk):
                    src = u_idx[unk]
                    b, v = _best_box_full(boxes, first_box_of_img, tie["img"][src], tie["coords"][src])
                    upd_box[unk] = b
                    upd_iou[unk] = v
            # merge updates into the anchor table
            pos_in = np.searchsorted(a_key, upd_key)
            pos_in_c = np.minimum(pos_in, max(len(a_key) - 1, 0))
            hit = (a_key[pos_in_c] == upd_key) if len(a_key) else np.zeros(len(upd_key), bool)
            a_match[pos_in_c[hit]] = upd_box[hit]
            a_iou[pos_in_c[hit]] = upd_iou[hit]
            new = ~hit
            if new.any():
                nk = upd_key[new]
                n_img_ = nk >> 40
                n_anchor = nk & ((1 << 40) - 1)
                out_parts.append({"img": n_img_, "anchor": n_anchor, "level": _level_of(lay, n_img_, n_anchor),
                                  "box": upd_box[new], "iou": upd_iou[new]})
        is_pos = a_match >= 0
        out_parts.append({"img": a_img[is_pos], "anchor": a_anchor[is_pos], "level": a_level[is_pos],
                          "box": a_match[is_pos], "iou": a_iou[is_pos]})
        return out_parts, np.bincount(a_img[a_match == -2], minlength=n_img)
    n_workers = max(1, min(len(bounds) - 1, threads if threads else (os.cpu_count() or 1), 8))
    if n_workers > 1:
        from concurrent.futures import ThreadPoolExecutor  # numpy releases the GIL in its kernels

        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(lambda ab: _chunk(*ab), zip(bounds[:-1], bounds[1:])))
    else:
        results = [_chunk(c0, c1) for c0, c1 in zip(bounds[:-1], bounds[1:])]
    out_parts = [p for r in results for p in r[0]]
    for r in results:
        ignored += r[1]
    parts = out_parts
    cat = (lambda k, dt: np.concatenate([p[k] for p in parts]).astype(dt) if parts else np.zeros(0, dt))
    res = CulledOutput(cat("img", _IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", _IDX),
                       cat("iou", F32), ignored, box_max, box_best, box_best_level, 0)
    if fallback_imgs:
        res = _replace_with_dense(res, preset, boxes, box_image, first_box_of_img, ph, pw, sorted(set(fallback_imgs)),
                                  float(pos), float(neg), lowq, semantics)
    return res


def _first_per_box(tie: dict) -> np.ndarray:
    """Indices into ``tie`` of each box's lowest-index tie anchor (its argmax, torch's first occurrence)."""
    o = np.lexsort((tie["anchor"], tie["local"]))
    st = _group_starts(tie["local"][o])
    return o[st]


def _segmax(dst: np.ndarray, idx: np.ndarray, val: np.ndarray) -> None:
    """dst[idx] = max(dst[idx], val) for sorted or unsorted idx, vectorised."""
    if len(idx) == 0:
        return
    o = np.argsort(idx, kind="stable")
    si = idx[o]
    st = _group_starts(si)
    m = np.maximum.reduceat(val[o], st)
    u = si[st]
    dst[u] = np.maximum(dst[u], m)


def _level_of(lay: _Layouts, img: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    off = lay.offset[img]  # (n, L)
    return (anchor[:, None] >= off).sum(axis=1) - 1


def _best_box_full(boxes: np.ndarray, first_box_of_img: np.ndarray, img: np.ndarray, coords: np.ndarray):
    """Best box (first on ties) and IoU of each anchor against every box of its image."""
    cnt = first_box_of_img[img + 1] - first_box_of_img[img]
    rep = np.repeat(np.arange(len(img)), cnt)
    starts = np.zeros(len(cnt), np.int64)
    np.cumsum(cnt[:-1], out=starts[1:])
    bidx = first_box_of_img[img][rep] + (np.arange(int(cnt.sum())) - starts[rep])
    iou = _iou32(boxes[bidx], coords[rep])
    m = np.maximum.reduceat(iou, starts)
    posn = np.where(iou == m[rep], np.arange(len(iou)), len(iou))
    first = np.minimum.reduceat(posn, starts)
    return bidx[first], m


def _replace_with_dense(res: CulledOutput, preset, boxes, box_image, first_box_of_img, ph, pw, images,
                        pos, neg, lowq, semantics) -> CulledOutput:
    """Recompute the given images with the dense engine (boxes that touch no anchor at all)."""
    import torch

    images = np.asarray(images, np.int64)
    keep = ~np.isin(res.pos_image, images)
    parts = {"img": [res.pos_image[keep]], "anchor": [res.pos_anchor[keep]], "level": [res.pos_level[keep]],
             "box": [res.pos_box[keep]], "iou": [res.pos_iou[keep]]}
    ignored = res.ignored_per_image.copy()
    from imbalance_cli.anchors.generator import grid_anchors_numpy
    for im in images:
        b0, b1 = int(first_box_of_img[im]), int(first_box_of_img[im + 1])
        anc, lv = grid_anchors_numpy(preset, int(ph[im]), int(pw[im]))
        out = dense_match_batched(torch.from_numpy(anc), torch.from_numpy(boxes[b0:b1])[None],
                                  torch.ones((1, b1 - b0), dtype=torch.bool), pos, neg, lowq, semantics)
        m = out.matched[0].numpy()
        p = np.flatnonzero(m >= 0)
        parts["img"].append(np.full(len(p), im)); parts["anchor"].append(p); parts["level"].append(lv[p])
        parts["box"].append(b0 + m[p]); parts["iou"].append(out.iou[0].numpy()[p])
        ignored[im] = int((m == -2).sum())
        res.box_max_iou[b0:b1] = out.box_max[0].numpy()
        res.box_best_anchor[b0:b1] = out.box_best[0].numpy()
        res.box_best_level[b0:b1] = lv[out.box_best[0].numpy()]
    cat = lambda k, dt: np.concatenate(parts[k]).astype(dt)
    return CulledOutput(cat("img", _IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", _IDX),
                        cat("iou", F32), ignored, res.box_max_iou, res.box_best_anchor, res.box_best_level, len(images))


# ----------------------------------------------------------------------------------------------
# per-image API
# ----------------------------------------------------------------------------------------------

def match(anchors, boxes, pos_iou: float, neg_iou: float, allow_low_quality: bool = True,
          semantics: str = "torchvision", engine: str = "dense", layout: tuple | None = None,
          max_elements: int = 1 << 24) -> MatchResult:
    """Match one image's anchors (A, 4) to its boxes (M, 4) (torch tensors, xyxy, same image frame).

    ``engine="culled"`` needs ``layout=(preset, padded_h, padded_w)`` describing how ``anchors``
    were generated (``grid_anchors(preset, padded_h, padded_w)``); it returns the same labels and
    matched indices as the dense engine (NaN IoU for anchors it never compared).
    """
    import torch

    _check(semantics, engine)
    if engine == "dense":
        valid = torch.ones((1, boxes.shape[0]), dtype=torch.bool, device=anchors.device)
        out = dense_match_batched(anchors, boxes.reshape(1, -1, 4).to(anchors.device), valid, pos_iou, neg_iou,
                                  allow_low_quality, semantics, max_elements)
        return MatchResult(out.matched[0], out.iou[0], out.box_max[0])
    if layout is None:
        raise ValueError("engine='culled' needs layout=(preset, padded_h, padded_w) of the anchors")
    preset, ph, pw = layout
    A = int(num_anchors(preset, ph, pw))
    if anchors.shape[0] != A:
        raise ValueError(f"anchors ({anchors.shape[0]}) do not match the layout's {A} anchors")
    b = boxes.detach().cpu().numpy().astype(F32).reshape(-1, 4)
    M = len(b)
    matched = np.full(A, -1, np.int64)
    iou = np.full(A, np.nan, F32)
    if M == 0:
        return MatchResult(torch.from_numpy(matched), torch.from_numpy(iou), torch.zeros(0))
    res = culled_match_dataset(preset, b, np.zeros(M, np.int64), np.array([ph]), np.array([pw]), pos_iou=pos_iou,
                               neg_iou=neg_iou, allow_low_quality=allow_low_quality, semantics=semantics)
    # ignored anchors: recompute which (the dataset output keeps only their count)
    ign, ign_iou = _ignored_anchors(preset, b, ph, pw, res, pos_iou, neg_iou, semantics)
    matched[ign] = -2
    iou[ign] = ign_iou
    matched[res.pos_anchor] = res.pos_box
    iou[res.pos_anchor] = res.pos_iou
    return MatchResult(torch.from_numpy(matched), torch.from_numpy(iou), torch.from_numpy(res.box_max_iou))


def _ignored_anchors(preset, b, ph, pw, res: CulledOutput, pos_iou, neg_iou, semantics):
    """Anchor indices (one image) with best IoU in [neg, pos) that are not positive, and their best IoU."""
    empty = (np.zeros(0, np.int64), np.zeros(0, F32))
    if semantics == "ssd" or F32(neg_iou) >= F32(pos_iou):
        return empty
    lay = _Layouts(preset, np.array([ph]), np.array([pw]))
    shapes = _Shapes(preset, ph, pw)
    t = np.full(len(b), F32(neg_iou), F32)
    cand = _enumerate(preset, shapes, lay, b, np.zeros(len(b), np.int64), t, np.array([ph]), np.array([pw]),
                      np.arange(len(b)))
    if cand is None:
        return empty
    o = np.argsort(cand["anchor"], kind="stable")
    ks = cand["anchor"][o]
    st = _group_starts(ks)
    a, v = ks[st], np.maximum.reduceat(cand["iou"][o], st)
    keep = ~np.isin(a, res.pos_anchor)
    return a[keep], v[keep]


# ----------------------------------------------------------------------------------------------
# dense engine, dataset level (batched by padded size; the CUDA path)
# ----------------------------------------------------------------------------------------------

def dense_match_dataset(preset: AnchorPreset, boxes: np.ndarray, box_image: np.ndarray, padded_h: np.ndarray,
                        padded_w: np.ndarray, *, pos_iou: float | None = None, neg_iou: float | None = None,
                        allow_low_quality: bool | None = None, semantics: str = "torchvision", device="cpu",
                        images: np.ndarray | None = None, negative_edges: np.ndarray | None = None,
                        max_elements: int | None = None, progress_description: str = "anchors (dense)"):
    """Dense matcher over a dataset: images sharing a padded size share one anchor tensor and are
    batched (fewest boxes first) so that about ``max_elements`` IoU values exist at a time.

    Same inputs and output as :func:`culled_match_dataset`; ``images`` restricts the work to some
    image rows (others get no positives). With ``negative_edges`` it also returns the histogram of
    negative anchors' best IoU over those edges (exact zeros excluded) and the count of exact
    zeros: ``(CulledOutput, counts, zeros)``; otherwise ``(CulledOutput, None, None)``.
    """
    import torch

    from imbalance_cli.anchors.generator import grid_anchors
    from imbalance_cli.progress import progress

    _check(semantics, "dense")
    pos, neg, lowq = _thresholds(preset, semantics, pos_iou, neg_iou, allow_low_quality)
    dev = torch.device(device)
    if max_elements is None:
        if dev.type == "cuda":  # about 10 float32 (B, M, chunk) temporaries must fit in free memory
            free, _ = torch.cuda.mem_get_info(dev)
            max_elements = int(max(1 << 22, min(1 << 28, free // 64)))
        else:
            max_elements = 1 << 22
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, np.int64)
    ph = np.asarray(padded_h, np.int64)
    pw = np.asarray(padded_w, np.int64)
    n_img, N = len(ph), len(boxes)
    start = np.searchsorted(box_image, np.arange(n_img + 1)) if N else np.zeros(n_img + 1, np.int64)
    nbox = np.diff(start)
    sel = np.arange(n_img) if images is None else np.asarray(images, np.int64)
    ignored = np.zeros(n_img, np.int64)
    box_max = np.zeros(N, F32)
    box_best = np.zeros(N, np.int64)
    box_best_level = np.zeros(N, np.int64)
    parts = {k: [] for k in ("img", "anchor", "level", "box", "iou")}
    want_neg = negative_edges is not None
    if want_neg:
        edges_t = torch.as_tensor(np.asarray(negative_edges, np.float32), device=dev)
        neg_counts = torch.zeros(len(negative_edges) - 1, dtype=torch.int64, device=dev)
        zeros = 0
    # images without boxes: all background, every IoU exactly zero
    empty = sel[nbox[sel] == 0]
    if want_neg and len(empty):
        zeros += int(num_anchors(preset, ph[empty], pw[empty]).sum())
    work = sel[nbox[sel] > 0]
    key = ph[work] * 1_000_003 + pw[work]
    order = np.lexsort((nbox[work], key))
    work = work[order]
    ks = key[order]
    st = _group_starts(ks)
    bounds = np.append(st, len(work))
    batches = []
    for g0, g1 in zip(bounds[:-1], bounds[1:]):
        imgs = work[g0:g1]
        A = int(num_anchors(preset, ph[imgs[0]], pw[imgs[0]]))
        b0 = 0
        while b0 < len(imgs):
            b1 = b0 + 1
            while b1 < len(imgs) and (b1 + 1 - b0) * int(nbox[imgs[b1]]) * A <= max_elements:
                b1 += 1
            batches.append(imgs[b0:b1])
            b0 = b1
    cache_key, anchors_t, level_t, level_np = None, None, None, None
    for imgs in progress(batches, total=len(batches), description=progress_description):
        k = (int(ph[imgs[0]]), int(pw[imgs[0]]))
        if k != cache_key:
            anchors_t, level_t = grid_anchors(preset, k[0], k[1], device=dev)
            level_np = level_t.cpu().numpy()
            cache_key = k
        Mx = int(nbox[imgs].max())
        idx = start[imgs][:, None] + np.arange(Mx)[None, :]
        valid_np = np.arange(Mx)[None, :] < nbox[imgs][:, None]
        idx = np.where(valid_np, idx, start[imgs][:, None])
        bt = torch.from_numpy(boxes[idx]).to(dev)
        vt = torch.from_numpy(valid_np).to(dev)
        out = dense_match_batched(anchors_t, bt, vt, pos, neg, lowq, semantics, max_elements)
        m = out.matched
        bi, ai = torch.nonzero(m >= 0, as_tuple=True)
        mb = m[bi, ai]
        imgs_t = torch.from_numpy(imgs).to(dev)
        start_t = torch.from_numpy(start[imgs]).to(dev)
        parts["img"].append(imgs_t[bi].cpu().numpy())
        parts["anchor"].append(ai.cpu().numpy())
        parts["level"].append(level_t[ai].cpu().numpy())
        parts["box"].append((start_t[bi] + mb).cpu().numpy())
        parts["iou"].append(out.iou[bi, ai].cpu().numpy())
        ignored[imgs] = (m == -2).sum(dim=1).cpu().numpy()
        gm, gb = out.box_max.cpu().numpy(), out.box_best.cpu().numpy()
        flat = idx[valid_np]
        box_max[flat] = gm[valid_np]
        box_best[flat] = gb[valid_np]
        box_best_level[flat] = level_np[gb[valid_np]]
        if want_neg:
            v = out.anchor_max[m == -1]
            nz = v[v > 0]
            zeros += int((v == 0).sum())
            b = torch.bucketize(nz, edges_t, right=True) - 1
            b = b[(b >= 0) & (b < len(negative_edges) - 1)]
            neg_counts += torch.bincount(b, minlength=len(negative_edges) - 1)
    cat = (lambda k, dt: np.concatenate(parts[k]).astype(dt) if parts[k] else np.zeros(0, dt))
    res = CulledOutput(cat("img", _IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", _IDX),
                       cat("iou", F32), ignored, box_max, box_best, box_best_level, 0)
    if want_neg:
        return res, neg_counts.cpu().numpy(), zeros
    return res, None, None


def culled_negative_histogram(preset: AnchorPreset, boxes: np.ndarray, box_image: np.ndarray, padded_h: np.ndarray,
                              padded_w: np.ndarray, images: np.ndarray, edges: np.ndarray, result: CulledOutput,
                              chunk_boxes: int = 2000) -> tuple[np.ndarray, int]:
    """Histogram of negative anchors' best IoU over ``edges`` (exact zeros apart) for some images, on a CPU.

    Every anchor with a non-zero IoU with some box of a listed image is enumerated (the culled
    bounds at a threshold just above 0), its best IoU taken over boxes; negatives are the anchors
    that ``result`` (the matcher's output for the same boxes) neither made positive nor ignored.
    Returns ``(counts, zeros)``; identical to the dense engine's histogram.
    """
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, np.int64)
    ph = np.asarray(padded_h, np.int64)
    pw = np.asarray(padded_w, np.int64)
    images = np.unique(np.asarray(images, np.int64))
    n_img = len(ph)
    counts = np.zeros(len(edges) - 1, np.int64)
    if len(images) == 0:
        return counts, 0
    lay = _Layouts(preset, ph, pw)
    shapes = _Shapes(preset, int(ph[0]), int(pw[0]))
    start = np.searchsorted(box_image, np.arange(n_img + 1))
    per_img = num_anchors(preset, ph[images], pw[images])
    pos_per_img = np.bincount(result.pos_image, minlength=n_img)
    negatives = int((per_img - pos_per_img[images] - result.ignored_per_image[images]).sum())
    nonzero_neg = 0
    in_sel = np.isin(result.pos_image, images)
    pos_keys = np.sort((result.pos_image[in_sel].astype(np.int64) << 40) | result.pos_anchor[in_sel])
    tiny = F32(np.finfo(np.float32).tiny)
    e32 = np.asarray(edges, dtype=F32)  # float32 edges, as the dense engine's bucketize
    nb = start[images + 1] - start[images]
    i0 = 0
    while i0 < len(images):
        i1 = i0 + 1
        acc = nb[i0]
        while i1 < len(images) and acc + nb[i1] <= chunk_boxes:
            acc += nb[i1]
            i1 += 1
        imgs = images[i0:i1]
        i0 = i1
        sel = np.concatenate([np.arange(start[im], start[im + 1]) for im in imgs]) if len(imgs) else np.zeros(0, np.int64)
        if len(sel) == 0:
            continue
        cand = _enumerate(preset, shapes, lay, boxes[sel], box_image[sel], np.full(len(sel), tiny, F32), ph, pw, sel)
        if cand is None:
            continue
        key = (cand["img"] << 40) | cand["anchor"]
        o = np.argsort(key)
        ks = key[o]
        st = _group_starts(ks)
        amax = np.maximum.reduceat(cand["iou"][o], st)
        uk = ks[st]
        # drop positives and ignored anchors (ignored: best IoU in [neg, pos) and not positive)
        p = np.searchsorted(pos_keys, uk)
        is_pos = (p < len(pos_keys)) & (pos_keys[np.minimum(p, len(pos_keys) - 1)] == uk) if len(pos_keys) else np.zeros(len(uk), bool)
        lo = F32(edges[-1])
        neg_mask = ~is_pos & (amax < lo)
        v = amax[neg_mask]
        nonzero_neg += len(v)
        b = np.searchsorted(e32, v, side="right") - 1
        b = b[(b >= 0) & (b < len(counts))]
        counts += np.bincount(b, minlength=len(counts))
    return counts, negatives - nonzero_neg
