"""The culled engine (numpy, CPU): only (box, anchor) pairs that can reach a threshold are compared.

Only anchors whose shape (centre-aligned IoU bound) and position (intersection bound
``I >= t (A_g + A_a) / (1 + t)``) can reach the enumeration threshold are compared with a box. The
threshold is ``neg_iou``; a box whose best IoU is below it is enumerated again down to a lower
bound of its best IoU (the IoU of its nearest anchor of every shape), so each box's highest IoU
and all its ties are exact. Anchors tying a box's best IoU below ``neg_iou`` are compared with
every box of their image to find their own best box. Images where some box touches no anchor at
all (best IoU 0) fall back to the dense engine. Background = anchors per image (arithmetic) -
positives - ignored. Labels follow :mod:`imbalance_cli.anchors.rules`; geometry comes from
:mod:`imbalance_cli.anchors.layouts` (the generator's functions).
"""

from __future__ import annotations

import os

import numpy as np

from imbalance_cli.anchors import rules
from imbalance_cli.anchors.generator import F32, grid_anchors_numpy
from imbalance_cli.anchors.iou import aligned_iou32
from imbalance_cli.anchors.layouts import ImageLayouts, ShapeTable
from imbalance_cli.anchors.presets import AnchorPreset
from imbalance_cli.anchors.rules import IDX, MatchOutput, group_starts
from imbalance_cli.data.arrays import unique_ints

_EMPTY_KEYS = (("box", np.int64), ("local", np.int64), ("img", np.int64), ("anchor", np.int64),
               ("level", np.int64), ("iou", F32))


def _expand(counts: np.ndarray):
    """For segment lengths ``counts``: (segment index, offset within segment) of every element."""
    total = int(counts.sum())
    seg = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    starts = np.zeros(len(counts), np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return seg, np.arange(total, dtype=np.int64) - starts[seg]


def rounding_slack(lay: ImageLayouts, shapes: ShapeTable) -> float:
    """How far (pixels) a float32 anchor coordinate can lie from its exact value: two float32 spacings at the
    largest coordinate any anchor of these images has (one rounding of ``shift + base`` is half a spacing).

    At a 1,344-pixel image that is 2.4e-4 px; at the 100,000-pixel limit 0.016 px, where a fixed 1e-6 px margin let
    the culled engine miss (box, anchor) pairs of unrounded (mmdetection, detectron2) anchors.
    """
    side = float(max(lay.padded_h.max(initial=0), lay.padded_w.max(initial=0)))
    reach = float(max(np.abs(shapes.ox).max(initial=0), np.abs(shapes.oy).max(initial=0)))
    size = float(max(shapes.wa.max(initial=0), shapes.ha.max(initial=0)))
    return 2.0 * float(np.spacing(np.float32(side + reach + size)))


@np.errstate(invalid="ignore", over="ignore")  # a box beyond float32 (inf) reaches no anchor; no warning
def enumerate_pairs(preset, shapes: ShapeTable, lay: ImageLayouts, gb: np.ndarray, gimg: np.ndarray, t: np.ndarray,
                    box_ids: np.ndarray):
    """Candidate (box, anchor) pairs with IoU >= t[box] (float32 compare), with exact float32 IoU.

    Three stages, each a necessary condition of IoU >= t (with a small conservative margin):
    (box, shape) pairs whose centre-aligned IoU reaches t; grid rows whose exact intersection
    height allows an intersection of ``t (A_g + A_a) / (1 + t)``; columns of each row with an
    intersection width large enough. Returns a dict of arrays, box-major, or None when empty.
    """
    lay.axis_tables(preset, shapes)
    g = gb.astype(np.float64)
    wg, hg = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    ag = wg * hg
    tt = t.astype(np.float64) * (1 - 1e-5) - 1e-7  # conservative against float32 rounding
    # a float32 anchor edge lies within `slack` of its exact value: its width within 2 slack of the shape's
    slack = max(shapes.slack, rounding_slack(lay, shapes))
    area_lo = np.maximum(shapes.wa - 2 * slack, 0) * np.maximum(shapes.ha - 2 * slack, 0)
    # -- stage 1: (box, shape) pairs (IoU <= largest intersection / (A_g + smallest A_a - it))
    iw0 = np.minimum(wg[:, None], shapes.wa[None, :] + 2 * slack)
    ih0 = np.minimum(hg[:, None], shapes.ha[None, :] + 2 * slack)
    inter0 = iw0 * ih0
    ub = inter0 / (ag[:, None] + area_lo[None, :] - inter0)
    bi, si = np.nonzero(ub >= tt[:, None])
    if len(bi) == 0:
        return None
    tb = tt[bi]
    # intersection needed: t (A_g + A_a) / (1 + t); none when t <= 0 (also for a box whose float64 area is inf)
    imin = np.where(tb > 0, np.maximum(tb / (1 + tb), 0) * (ag[bi] + area_lo[si]), 0.0)
    my = imin / iw0[bi, si]
    lvl = shapes.level[si]
    img = gimg[bi]
    oy, ha, sy = shapes.oy[si], shapes.ha[si], lay.step_y[img, lvl]
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
    rlvl = shapes.level[rs]
    ry1, ry2 = lay.row_extent(rimg, rs, ri)
    gbr = gb[rb]
    ih32 = np.minimum(gbr[:, 3], ry2) - np.maximum(gbr[:, 1], ry1)
    ih = ih32.astype(np.float64)
    with np.errstate(divide="ignore"):
        mx = np.where(ih > 0, imin[pr] / np.where(ih > 0, ih, 1), np.inf)
    ox, wa, sx = shapes.ox[rs], shapes.wa[rs], lay.step_x[rimg, rlvl]
    j_lo = np.maximum(np.ceil((gbr[:, 0] + mx - wa - ox - slack) / sx), 0)
    j_hi = np.minimum(np.floor((gbr[:, 2] - mx - ox + slack) / sx), lay.gw[rimg, rlvl] - 1)
    nj = np.where(np.isfinite(j_lo) & np.isfinite(j_hi), np.maximum(j_hi - j_lo + 1, 0), 0).astype(np.int64)
    j_lo = np.where(nj > 0, j_lo, 0).astype(np.int64)
    # -- stage 3: candidates
    cr, coff = _expand(nj)
    if len(cr) == 0:
        return None
    cj = j_lo[cr] + coff
    x1a, x2a = lay.col_extent(rimg[cr], rs[cr], cj)
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


@np.errstate(invalid="ignore", over="ignore")
def _nearest_lower_bound(preset, shapes: ShapeTable, lay: ImageLayouts, gb: np.ndarray, gimg) -> np.ndarray:
    """A lower bound of each box's best IoU: the IoU of its nearest anchor of every shape (max)."""
    n = len(gb)
    S = len(shapes.level)
    g = gb.astype(np.float64)
    cx, cy = (g[:, 0] + g[:, 2]) / 2, (g[:, 1] + g[:, 3]) / 2
    bi = np.repeat(np.arange(n), S)
    si = np.tile(np.arange(S), n)
    lvl = shapes.level[si]
    img = gimg[bi]
    j = np.rint((cx[bi] - shapes.ox[si] - shapes.wa[si] / 2) / lay.step_x[img, lvl]).astype(np.int64)
    i = np.rint((cy[bi] - shapes.oy[si] - shapes.ha[si] / 2) / lay.step_y[img, lvl]).astype(np.int64)
    j = np.clip(j, 0, lay.gw[img, lvl] - 1)
    i = np.clip(i, 0, lay.gh[img, lvl] - 1)
    lay.axis_tables(preset, shapes)
    y1, y2 = lay.row_extent(img, si, i)
    x1, x2 = lay.col_extent(img, si, j)
    iou = aligned_iou32(gb[bi], np.stack((x1, y1, x2, y2), axis=1)).reshape(n, S)
    return iou.max(axis=1)


def _segmax(dst: np.ndarray, idx: np.ndarray, val: np.ndarray) -> None:
    """dst[idx] = max(dst[idx], val) for sorted or unsorted idx, vectorised."""
    if len(idx) == 0:
        return
    o = np.argsort(idx, kind="stable")
    si = idx[o]
    st = group_starts(si)
    m = np.maximum.reduceat(val[o], st)
    u = si[st]
    dst[u] = np.maximum(dst[u], m)


def _best_box_full(boxes: np.ndarray, first_box_of_img: np.ndarray, img: np.ndarray, coords: np.ndarray):
    """Best box (first on ties) and IoU of each anchor against every box of its image."""
    cnt = first_box_of_img[img + 1] - first_box_of_img[img]
    rep = np.repeat(np.arange(len(img)), cnt)
    starts = np.zeros(len(cnt), np.int64)
    np.cumsum(cnt[:-1], out=starts[1:])
    bidx = first_box_of_img[img][rep] + (np.arange(int(cnt.sum())) - starts[rep])
    iou = aligned_iou32(boxes[bidx], coords[rep])
    m = np.maximum.reduceat(iou, starts)
    posn = np.where(iou == m[rep], np.arange(len(iou)), len(iou))
    first = np.minimum.reduceat(posn, starts)
    return bidx[first], m


def _replace_with_dense(res: MatchOutput, preset, boxes, box_image, first_box_of_img, ph, pw, images,
                        pos, neg, lowq, semantics) -> MatchOutput:
    """Recompute the given images with the dense engine (boxes that touch no anchor at all)."""
    import torch

    from imbalance_cli.anchors.dense import dense_match_batched

    images = np.asarray(images, np.int64)
    keep = ~np.isin(res.pos_image, images)
    parts = {"img": [res.pos_image[keep]], "anchor": [res.pos_anchor[keep]], "level": [res.pos_level[keep]],
             "box": [res.pos_box[keep]], "iou": [res.pos_iou[keep]]}
    ignored = res.ignored_per_image.copy()
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
    return MatchOutput(cat("img", IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", IDX),
                       cat("iou", F32), ignored, res.box_max_iou, res.box_best_anchor, res.box_best_level, len(images))


def culled_match_dataset(preset: AnchorPreset, boxes: np.ndarray, box_image: np.ndarray, padded_h: np.ndarray,
                         padded_w: np.ndarray, *, pos_iou: float | None = None, neg_iou: float | None = None,
                         allow_low_quality: bool | None = None, semantics: str = "torchvision",
                         chunk_boxes: int = 10000, threads: int | None = None) -> MatchOutput:
    """Culled matcher over many images at once (see module docstring).

    ``boxes`` float32 (N, 4) in resized-image pixels, ``box_image`` (N,) image rows **sorted
    ascending** (a box's position among its image's boxes is its gt index), ``padded_h/w``
    (n_img,) padded sizes. Returns a :class:`MatchOutput` whose ``pos_box`` index ``boxes``.
    Chunks of about ``chunk_boxes`` boxes (whole images) run on ``threads`` threads (default: CPU
    count, at most 8); the output does not depend on either. For bounded memory over a large
    dataset use :func:`imbalance_cli.anchors.run.run_anchor_pass`.
    """
    rules.check(semantics, "culled")
    pos, neg, lowq = rules.thresholds(preset, semantics, pos_iou, neg_iou, allow_low_quality)
    pos, neg = F32(pos), F32(neg)
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, dtype=np.int64)
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    n_img, N = len(ph), len(boxes)
    if N and np.any(np.diff(box_image) < 0):
        raise ValueError("box_image must be sorted ascending")
    if preset.kind == "ssd" and n_img and (np.any(ph != ph[0]) or np.any(pw != pw[0])):
        raise ValueError("ssd presets need one fixed image size")
    box_max = np.zeros(N, F32)
    box_best = np.zeros(N, np.int64)
    box_best_level = np.zeros(N, np.int64)
    ignored = np.zeros(n_img, np.int64)
    if N == 0:
        z = lambda dt: np.zeros(0, dt)
        return MatchOutput(z(IDX), z(np.int64), z(np.int8), z(IDX), z(F32), ignored, box_max, box_best,
                           box_best_level, 0)
    # only images with boxes need a layout; shapes do not depend on the image size (ssd: one fixed size)
    lay = ImageLayouts(preset, ph, pw)
    shapes = ShapeTable(preset, int(ph[0]), int(pw[0]))
    lay.axis_tables(preset, shapes)  # once, before any thread reads it
    fallback_imgs: list[int] = []
    img_start = np.searchsorted(box_image, np.arange(n_img + 1))
    first_box_of_img = img_start
    bounds = [0]
    while bounds[-1] < N:  # chunk on image boundaries
        target = min(N, bounds[-1] + chunk_boxes)
        if target < N:
            target = int(img_start[box_image[target]])  # start of that image
            if target <= bounds[-1]:
                target = int(img_start[box_image[bounds[-1]] + 1])
        bounds.append(target)
    best_box_of = lambda img, coords: _best_box_full(boxes, first_box_of_img, img, coords)

    def _chunk(c0: int, c1: int):
        out_parts: list[dict] = []
        gb = boxes[c0:c1]
        gimg = box_image[c0:c1]
        ids = np.arange(c0, c1, dtype=np.int64)
        nb = c1 - c0
        cand = enumerate_pairs(preset, shapes, lay, gb, gimg, np.full(nb, neg, dtype=F32), ids)
        if cand is None:
            cand = {k: np.zeros(0, dt) for k, dt in _EMPTY_KEYS}
            cand["coords"] = np.zeros((0, 4), F32)
        gmax = np.full(nb, -1.0, dtype=F32)
        _segmax(gmax, cand["local"], cand["iou"])
        low = np.flatnonzero(gmax < neg)
        second = None
        fallback: list[int] = []
        if len(low):
            lb = _nearest_lower_bound(preset, shapes, lay, gb[low], gimg[low])
            zero = lb <= 0
            if zero.any():
                fallback = unique_ints(gimg[low[zero]]).tolist()
            ok = ~zero
            if ok.any():
                sel = low[ok]
                second = enumerate_pairs(preset, shapes, lay, gb[sel], gimg[sel], lb[ok].astype(F32), ids[sel])
                if second is not None:
                    second["local"] = sel[second["local"]]
                    _segmax(gmax, second["local"], second["iou"])
        # ---- each box's best IoU, ties (all anchors attaining it) and first best anchor
        def ties_of(cd):
            m = cd["iou"] == gmax[cd["local"]]
            return {k: v[m] for k, v in cd.items()}
        tie_parts = [ties_of(cand)] + ([ties_of(second)] if second is not None else [])
        tie = {k: np.concatenate([p[k] for p in tie_parts]) for k in tie_parts[0]}
        o = np.lexsort((tie["anchor"], tie["local"]))
        tl = tie["local"][o]
        st = group_starts(tl)
        box_best[c0 + tl[st]] = tie["anchor"][o][st]
        box_best_level[c0 + tl[st]] = tie["level"][o][st]
        box_max[c0:c1] = gmax
        # ---- per-anchor best box among candidates with IoU >= neg (exact: every such box enumerated it)
        key = (cand["img"] << 40) | cand["anchor"]  # composite (image row, anchor); anchors per image < 2**40
        o = np.argsort(key, kind="stable")
        ks = key[o]
        st = group_starts(ks)
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
        a_match = np.where(amax >= pos, a_box, -2)  # labels before the low-quality step
        a_iou = amax.copy()
        if len(tie["box"]) and rules.has_low_quality_step(semantics, lowq):
            upd_key, upd_box, upd_iou = rules.sparse_updates(semantics, tie, gmax, a_key, a_box, amax, best_box_of)
            pos_in = np.minimum(np.searchsorted(a_key, upd_key), max(len(a_key) - 1, 0))
            hit = (a_key[pos_in] == upd_key) if len(a_key) else np.zeros(len(upd_key), bool)
            a_match[pos_in[hit]] = upd_box[hit]
            a_iou[pos_in[hit]] = upd_iou[hit]
            new = ~hit
            if new.any():
                nk = upd_key[new]
                n_img_ = nk >> 40
                n_anchor = nk & ((1 << 40) - 1)
                out_parts.append({"img": n_img_, "anchor": n_anchor, "level": lay.level_of(n_img_, n_anchor),
                                  "box": upd_box[new], "iou": upd_iou[new]})
        is_pos = a_match >= 0
        out_parts.append({"img": a_img[is_pos], "anchor": a_anchor[is_pos], "level": a_level[is_pos],
                          "box": a_match[is_pos], "iou": a_iou[is_pos]})
        return out_parts, np.bincount(a_img[a_match == -2], minlength=n_img), fallback

    n_workers = max(1, min(len(bounds) - 1, threads if threads else (os.cpu_count() or 1), 8))
    if n_workers > 1:
        from concurrent.futures import ThreadPoolExecutor  # numpy releases the GIL in its kernels

        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(lambda ab: _chunk(*ab), zip(bounds[:-1], bounds[1:])))
    else:
        results = [_chunk(c0, c1) for c0, c1 in zip(bounds[:-1], bounds[1:])]
    parts = [p for r in results for p in r[0]]
    for r in results:
        ignored += r[1]
        fallback_imgs.extend(r[2])
    cat = (lambda k, dt: np.concatenate([p[k] for p in parts]).astype(dt) if parts else np.zeros(0, dt))
    res = MatchOutput(cat("img", IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", IDX),
                      cat("iou", F32), ignored, box_max, box_best, box_best_level, 0)
    if fallback_imgs:
        res = _replace_with_dense(res, preset, boxes, box_image, first_box_of_img, ph, pw, sorted(set(fallback_imgs)),
                                  float(pos), float(neg), lowq, semantics)
    return res
