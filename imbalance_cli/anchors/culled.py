"""The culled engine (numpy, CPU): only (box, anchor) pairs that can reach a threshold are compared.

Only anchors whose shape (centre-aligned IoU bound) and position (intersection bound
``I >= t (A_g + A_a) / (1 + t)``) can reach the enumeration threshold are compared with a box:
for each (box, shape) entry they form a rectangle of grid rows x columns (:func:`rect_entries`),
whose IoUs are one separable outer product (:func:`rect_groups`). The threshold is ``neg_iou``; a
box whose best IoU is below it is enumerated again down to a lower bound of its best IoU (the IoU
of its nearest anchor of every shape), so each box's highest IoU and all its ties are exact.
Anchors of a rectangle no other box's rectangle meets have one candidate box and are labelled
per rectangle; the others are grouped by anchor (:func:`_match_chunk`). Anchors tying a box's best IoU below ``neg_iou`` are compared with
every box of their image to find their own best box. Images where some box touches no anchor at
all (best IoU 0) fall back to the dense engine. Background = anchors per image (arithmetic) -
positives - ignored. Labels follow :mod:`imbalance_cli.anchors.rules`; geometry comes from
:mod:`imbalance_cli.anchors.layouts` (the generator's functions).
"""

from __future__ import annotations

import os

import numpy as np

from imbalance_cli.anchors import phases, rules
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


#: Padded rectangle sides: a (box, shape) entry's ni x nj grid rectangle is computed in a group of
#: entries padded to the next ladder sizes (1, 2, 3, 4, 6, 8, 12, 16, ...: few groups, at most 50% padding
#: per side; a finer ladder made ~4x more groups, whose per-call cost outweighed the padding saved).
LADDER = np.array(sorted({1, 2, 3} | {int(m * 2 ** k) for k in range(2, 40) for m in (1, 1.5)}), dtype=np.int64)
#: IoU values computed at once by one rectangle group (float32 temporaries of this many elements).
GROUP_ELEMENTS = 1 << 19


class Entries:
    """(box, shape) pairs that can reach their box's threshold, each with its grid rectangle.

    ``box`` (local box row), ``shape`` (ShapeTable row), ``img``, ``level``; rows ``i_lo ..
    i_lo + ni - 1`` and columns ``j_lo .. j_lo + nj - 1`` hold every anchor of that shape whose IoU
    with the box can reach ``t`` (conservative bounds); ``a0``, ``rstep``, ``cstep``: the anchor
    index (within its image) of row ``i_lo + di``, column ``j_lo + dj`` is ``a0 + di rstep + dj cstep``.
    """

    def __init__(self, **arrays):
        self.__dict__.update(arrays)

    def __len__(self) -> int:
        return len(self.box)


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


@np.errstate(invalid="ignore", over="ignore", divide="ignore")  # a box beyond float32 (inf) reaches no anchor
def rect_entries(shapes: ShapeTable, lay: ImageLayouts, gb: np.ndarray, gimg: np.ndarray, t: np.ndarray) -> Entries:
    """The enumeration: (box, shape) entries and their grid rectangles for thresholds ``t`` (one per box).

    Two necessary conditions of IoU >= t (with a small conservative margin): the centre-aligned
    IoU of the box and the shape reaches t, and an anchor's intersection ``I >= t (A_g + A_a) /
    (1 + t)`` bounds its row (with the best possible width overlap) and its column (with the best
    possible height overlap). Entries are box-major.
    """
    prev = phases.switch("enumeration")
    g = gb.astype(np.float64)
    wg, hg = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
    ag = wg * hg
    tt = t.astype(np.float64) * (1 - 1e-5) - 1e-7  # conservative against float32 rounding
    # a float32 anchor edge lies within `slack` of its exact value: its width within 2 slack of the shape's
    slack = max(shapes.slack, rounding_slack(lay, shapes))
    area_lo = np.maximum(shapes.wa - 2 * slack, 0) * np.maximum(shapes.ha - 2 * slack, 0)
    # (box, shape) pairs: IoU <= largest intersection / (A_g + smallest A_a - it)
    iw0 = np.minimum(wg[:, None], shapes.wa[None, :] + 2 * slack)
    ih0 = np.minimum(hg[:, None], shapes.ha[None, :] + 2 * slack)
    inter0 = iw0 * ih0
    ub = inter0 / (ag[:, None] + area_lo[None, :] - inter0)
    bi, si = np.nonzero(ub >= tt[:, None])
    tb = tt[bi]
    # intersection needed: t (A_g + A_a) / (1 + t); none when t <= 0 (also for a box whose float64 area is inf)
    imin = np.where(tb > 0, np.maximum(tb / (1 + tb), 0) * (ag[bi] + area_lo[si]), 0.0)
    w0, h0 = iw0[bi, si], ih0[bi, si]
    my = np.where(w0 > 0, imin / np.where(w0 > 0, w0, 1), 0.0)
    mx = np.where(h0 > 0, imin / np.where(h0 > 0, h0, 1), 0.0)
    lvl = shapes.level[si]
    img = gimg[bi]
    gh, gw = lay.gh[img, lvl], lay.gw[img, lvl]
    sy, sx = lay.step_y[img, lvl], lay.step_x[img, lvl]
    i_lo = np.maximum(np.ceil((g[bi, 1] + my - shapes.ha[si] - shapes.oy[si] - slack) / sy), 0).astype(np.int64)
    i_hi = np.minimum(np.floor((g[bi, 3] - my - shapes.oy[si] + slack) / sy), gh - 1).astype(np.int64)
    j_lo = np.maximum(np.ceil((g[bi, 0] + mx - shapes.wa[si] - shapes.ox[si] - slack) / sx), 0).astype(np.int64)
    j_hi = np.minimum(np.floor((g[bi, 2] - mx - shapes.ox[si] + slack) / sx), gw - 1).astype(np.int64)
    ok = np.flatnonzero((i_hi >= i_lo) & (j_hi >= j_lo))
    bi, si, lvl, img, gw, i_lo, i_hi, j_lo, j_hi = (v[ok] for v in (bi, si, lvl, img, gw, i_lo, i_hi, j_lo, j_hi))
    per = lay.per_loc[lvl]
    ni, nj = i_hi - i_lo + 1, j_hi - j_lo + 1
    # every rectangle's rows and columns, flat: extents from the layout's tables, the box's overlap in float32
    # (torchvision: ``(min(x2) - max(x1)).clamp(0)``); a last sentinel row / column stands for padding
    rows, cols = _axis(lay.row_extent, img, si, i_lo, ni, gb[bi][:, 1], gb[bi][:, 3]), \
        _axis(lay.col_extent, img, si, j_lo, nj, gb[bi][:, 0], gb[bi][:, 2])
    phases.switch(prev)
    return Entries(box=bi, shape=si, img=img, level=lvl, i_lo=i_lo, j_lo=j_lo, ni=ni, nj=nj, t=t[bi],
                   a0=lay.offset[img, lvl] + (i_lo * gw + j_lo) * per + shapes.k[si], rstep=gw * per, cstep=per,
                   rs=rows[0], cs=cols[0], area=((gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1]))[bi], rows=rows[1],
                   cols=cols[1])


@np.errstate(invalid="ignore")
def _axis(extent, img, shape, lo, n, g1, g2):
    """(first flat index of each entry, {"a1", "a2", "overlap", "size"} flat arrays plus a sentinel) along one axis."""
    seg, off = _expand(n)
    a1, a2 = extent(img[seg], shape[seg], lo[seg] + off)
    ov = np.minimum(g2[seg], a2) - np.maximum(g1[seg], a1)
    np.maximum(ov, F32(0), out=ov)
    start = np.zeros(len(n), np.int64)
    np.cumsum(n[:-1], out=start[1:])
    z, one = np.zeros(1, F32), np.ones(1, F32)
    return start, {"a1": np.concatenate((a1, z)), "a2": np.concatenate((a2, z)), "overlap": np.concatenate((ov, z)),
                   "size": np.concatenate((a2 - a1, one))}


class Group:
    """Entries ``idx`` with their padded ``(n, PI, PJ)`` float32 IoU rectangle; ``ri`` / ``ci`` (n, PI) / (n, PJ)
    index the entries' flat rows / columns (padding: the sentinel), ``y1`` / ``x1`` their anchors' top-left."""

    __slots__ = ("idx", "iou", "ri", "ci", "y1", "x1")

    def __init__(self, idx, iou, ri, ci, y1, x1):
        self.idx, self.iou, self.ri, self.ci, self.y1, self.x1 = idx, iou, ri, ci, y1, x1


def rect_groups(ent: Entries, elements: int = GROUP_ELEMENTS):
    """The IoU: every anchor of every entry's rectangle, entries grouped by padded rectangle size (a generator).

    Anchors are axis-aligned on a grid, so a rectangle's IoU is separable: the intersection
    height depends on the row only, the width on the column only. Per element the arithmetic is
    torchvision's ``box_iou`` in float32 (``inter = iw * ih``, ``union = (area_box + area_anchor) -
    inter``, ``area_anchor = (x2 - x1) * (y2 - y1)``, ``iou = inter / union``); padding gets IoU 0.
    """
    if len(ent) == 0:
        return
    prev = phases.switch("enumeration")
    pi = LADDER[np.searchsorted(LADDER, ent.ni)]
    pj = LADDER[np.searchsorted(LADDER, ent.nj)]
    gk = pi * (int(LADDER[-1]) + 1) + pj
    order = np.argsort(gk, kind="stable")
    ks = gk[order]
    st = group_starts(ks)
    ends = np.append(st[1:], len(ks))
    phases.switch(prev)
    for s0, s1 in zip(st.tolist(), ends.tolist()):
        PI, PJ = int(pi[order[s0]]), int(pj[order[s0]])
        step = max(1, elements // (PI * PJ))
        for a in range(s0, s1, step):
            yield _rect(ent, order[a:min(s1, a + step)], PI, PJ)


@np.errstate(invalid="ignore", over="ignore")
def _rect(ent, idx, PI, PJ) -> Group:
    prev = phases.switch("enumeration")
    ar_i, ar_j = np.arange(PI), np.arange(PJ)
    R, C = ent.rows, ent.cols
    ri = np.where(ar_i < ent.ni[idx][:, None], ent.rs[idx][:, None] + ar_i, len(R["a1"]) - 1)
    ci = np.where(ar_j < ent.nj[idx][:, None], ent.cs[idx][:, None] + ar_j, len(C["a1"]) - 1)
    ih, hy = R["overlap"][ri], R["size"][ri]
    iw, wx = C["overlap"][ci], C["size"][ci]
    phases.switch("iou")
    inter = ih[:, :, None] * iw[:, None, :]
    union = hy[:, :, None] * wx[:, None, :]
    union += ent.area[idx][:, None, None]
    union -= inter
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(inter, union, out=inter)
    phases.switch(prev)
    return Group(idx, inter, ri, ci, R["a1"][ri], C["a1"][ci])


def _records(ent: Entries, g: Group, rows: np.ndarray | None, mask: np.ndarray, corners: str = "xy") -> dict:
    """Elements of ``mask`` (over ``g.iou[rows]``, or all rows when None) as records: entry, anchor, IoU and the
    anchor's corners (``"xy"``: top-left ``x1``, ``y1``; ``"xyxy"``: all four)."""
    r, di, dj = np.nonzero(mask)
    iou = (g.iou if rows is None else g.iou[rows])[mask]
    if rows is not None:
        r = rows[r]
    e = g.idx[r]
    out = {"e": e, "anchor": ent.a0[e] + di * ent.rstep[e] + dj * ent.cstep[e], "iou": iou,
           "x1": g.x1[r, dj], "y1": g.y1[r, di]}
    if corners == "xyxy":
        out["x2"], out["y2"] = ent.cols["a2"][g.ci[r, dj]], ent.rows["a2"][g.ri[r, di]]
    return out


def _cat(parts: list, corners: str = "xy") -> dict:
    keys = ("e", "anchor", "iou", "x1", "y1") + (("x2", "y2") if corners == "xyxy" else ())
    if not parts:
        return {k: np.zeros(0, np.int64 if k in ("e", "anchor") else F32) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def enumerate_pairs(preset, shapes: ShapeTable, lay: ImageLayouts, gb: np.ndarray, gimg: np.ndarray, t: np.ndarray,
                    box_ids: np.ndarray):
    """Candidate (box, anchor) pairs with IoU >= t[box] (float32 compare), with exact float32 IoU.

    :func:`rect_entries` and :func:`rect_groups`, every element at or above its threshold kept.
    Returns a dict of arrays (``box``, ``local``, ``img``, ``anchor``, ``level``, ``iou``,
    ``coords``), or None when empty.
    """
    lay.axis_tables(preset, shapes)
    ent = rect_entries(shapes, lay, gb, gimg, t)
    parts = [_records(ent, g, None, g.iou >= ent.t[g.idx][:, None, None], "xyxy") for g in rect_groups(ent)]
    rec = _cat(parts, "xyxy")
    if len(rec["e"]) == 0:
        return None
    e = rec["e"]
    return {"box": box_ids[ent.box[e]], "local": ent.box[e], "img": ent.img[e], "anchor": rec["anchor"],
            "level": ent.level[e], "iou": rec["iou"],
            "coords": np.stack((rec["x1"], rec["y1"], rec["x2"], rec["y2"]), axis=1)}


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


def _best_box_full(boxes: np.ndarray, first_box_of_img: np.ndarray, img: np.ndarray, coords: np.ndarray):
    """Best box (first on ties) and IoU of each anchor against every box of its image.

    Every anchor asked about overlaps some box (it ties a box's best IoU, which is > 0), so pairs
    without horizontal overlap (IoU 0) are dropped before the rest of the arithmetic.
    """
    cnt = first_box_of_img[img + 1] - first_box_of_img[img]
    starts = np.zeros(len(cnt), np.int64)
    np.cumsum(cnt[:-1], out=starts[1:])
    bidx = np.repeat(first_box_of_img[img] - starts, cnt) + np.arange(int(cnt.sum()))
    anc = np.repeat(np.arange(len(img)), cnt)
    w = np.minimum(boxes[bidx, 2], np.repeat(coords[:, 2], cnt)) - np.maximum(boxes[bidx, 0], np.repeat(coords[:, 0], cnt))
    keep = np.flatnonzero(w > 0)
    bidx, anc = bidx[keep], anc[keep]
    iou = aligned_iou32(boxes[bidx], coords[anc])
    st = np.searchsorted(anc, np.arange(len(img)))
    m = np.maximum.reduceat(iou, st)
    posn = np.where(iou == m[anc], np.arange(len(iou)), len(iou))
    first = np.minimum.reduceat(posn, st)
    return bidx[first], m


def _replace_with_dense(res: MatchOutput, preset, boxes, box_image, first_box_of_img, ph, pw, images,
                        pos, neg, lowq, semantics) -> MatchOutput:
    """Recompute the given images with the dense engine (boxes that touch no anchor at all)."""
    import torch

    from imbalance_cli.anchors.dense import dense_match_batched

    images = np.asarray(images, np.int64)
    keep = ~np.isin(res.pos_image, images)
    parts = {"img": [res.pos_image[keep]], "anchor": [res.pos_anchor[keep]], "level": [res.pos_level[keep]],
             "box": [res.pos_box[keep]], "iou": [res.pos_iou[keep]], "x1": [res.pos_x1[keep]],
             "y1": [res.pos_y1[keep]]}
    ignored = res.ignored_per_image.copy()
    box_ign = res.box_ignored.copy()
    for im in images:
        b0, b1 = int(first_box_of_img[im]), int(first_box_of_img[im + 1])
        anc, lv = grid_anchors_numpy(preset, int(ph[im]), int(pw[im]))
        out = dense_match_batched(torch.from_numpy(anc), torch.from_numpy(boxes[b0:b1])[None],
                                  torch.ones((1, b1 - b0), dtype=torch.bool), pos, neg, lowq, semantics)
        m = out.matched[0].numpy()
        p = np.flatnonzero(m >= 0)
        parts["img"].append(np.full(len(p), im)); parts["anchor"].append(p); parts["level"].append(lv[p])
        parts["box"].append(b0 + m[p]); parts["iou"].append(out.iou[0].numpy()[p])
        parts["x1"].append(anc[p, 0]); parts["y1"].append(anc[p, 1])
        ignored[im] = int((m == -2).sum())
        box_ign[b0:b1] = np.bincount(out.anchor_box[0].numpy()[m == -2], minlength=b1 - b0)
        res.box_max_iou[b0:b1] = out.box_max[0].numpy()
        res.box_best_anchor[b0:b1] = out.box_best[0].numpy()
        res.box_best_level[b0:b1] = lv[out.box_best[0].numpy()]
    cat = lambda k, dt: np.concatenate(parts[k]).astype(dt)
    return MatchOutput(cat("img", IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", IDX),
                       cat("iou", F32), ignored, res.box_max_iou, res.box_best_anchor, res.box_best_level, len(images),
                       cat("x1", F32), cat("y1", F32), box_ign)


def _shared_entries(ent: Entries, n_shapes: int, points: dict | None = None) -> np.ndarray:
    """Entries whose anchors another box may also reach: rectangles meeting another entry's rectangle of the
    same image and shape, or holding one of ``points`` (``img``, ``shape``, ``i``, ``j`` arrays)."""
    n = len(ent)
    shared = np.zeros(n, bool)
    if n == 0:
        return shared
    gk = ent.img * n_shapes + ent.shape
    o = np.argsort(gk, kind="stable")
    ks = gk[o]
    st = group_starts(ks)
    cnt = np.diff(np.append(st, n))
    multi = np.flatnonzero(cnt >= 2)
    if len(multi):  # every ordered pair of distinct entries within a group
        gs, gc = st[multi], cnt[multi]
        mem, off = _expand(gc)  # member positions
        a = gs[mem] + off
        seg, off2 = _expand(gc[mem])
        pa, pb = o[a[seg]], o[gs[mem[seg]] + off2]
        keep = pa != pb
        pa, pb = pa[keep], pb[keep]
        hit = ((np.maximum(ent.i_lo[pa], ent.i_lo[pb]) < np.minimum(ent.i_lo[pa] + ent.ni[pa], ent.i_lo[pb] + ent.ni[pb]))
               & (np.maximum(ent.j_lo[pa], ent.j_lo[pb]) < np.minimum(ent.j_lo[pa] + ent.nj[pa], ent.j_lo[pb] + ent.nj[pb])))
        shared[pa[hit]] = True
    if points is not None and len(points["img"]):
        pk = points["img"] * n_shapes + points["shape"]
        lo, hi = np.searchsorted(ks, pk, "left"), np.searchsorted(ks, pk, "right")
        seg, off = _expand(hi - lo)
        e = o[lo[seg] + off]
        di, dj = points["i"][seg] - ent.i_lo[e], points["j"][seg] - ent.j_lo[e]
        shared[e[(di >= 0) & (di < ent.ni[e]) & (dj >= 0) & (dj < ent.nj[e])]] = True
    return shared


def _sort_order(keys: np.ndarray) -> np.ndarray:
    """``np.argsort(keys, kind="stable")`` for non-negative int64 keys, by sorting (key, position) packed in one
    int64 where they fit (NumPy's sort of plain int64 values is ~3x faster than its argsort, measured)."""
    n = len(keys)
    if n < 2:
        return np.arange(n)
    pbits = int(n - 1).bit_length()
    lo, hi = int(keys.min()), int(keys.max())
    if (hi - lo) >= 1 << (63 - pbits):
        return np.argsort(keys, kind="stable")
    packed = np.sort(((keys - lo) << pbits) | np.arange(n))
    return packed & ((1 << pbits) - 1)


def _box_max(ent: Entries, groups: list, nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's highest IoU (its rectangle's max) and each box's (-1 without entries)."""
    emax = np.full(len(ent), -1.0, F32)
    for g in groups:
        emax[g.idx] = g.iou.reshape(len(g.idx), -1).max(axis=1)
    gmax = np.full(nb, -1.0, F32)
    np.maximum.at(gmax, ent.box, emax)
    return emax, gmax


def _ties(ent: Entries, groups: list, emax: np.ndarray, gmax: np.ndarray, boxes_sel: np.ndarray) -> dict:
    """Records of every anchor attaining its box's highest IoU, for the boxes in ``boxes_sel`` (mask)."""
    is_tie = (emax == gmax[ent.box]) & boxes_sel[ent.box]
    parts = []
    for g in groups:
        rows = np.flatnonzero(is_tie[g.idx])
        if len(rows):
            v = gmax[ent.box[g.idx[rows]]]
            parts.append(_records(ent, g, rows, g.iou[rows] == v[:, None, None], "xyxy"))
    return _cat(parts, "xyxy")


def _match_chunk(preset, shapes, lay, gb, gimg, c0, pos, neg, lowq, semantics, best_box_of, n_img):
    """Label one chunk of whole images (boxes ``gb`` with image rows ``gimg``; ``c0`` the first box's index).

    Entries at ``neg`` give each box's highest IoU; boxes below ``neg`` are enumerated again down
    to a lower bound of their best IoU. Anchors of an entry that no other entry can reach
    (:func:`_shared_entries`) have one candidate box: their label is their IoU's, counted per entry
    (positives kept as records, ignored anchors only counted); anchors of shared entries are grouped
    by anchor (best IoU, first box on ties). The low-quality / forced matches of each box's tying
    anchors are applied last (:func:`rules.sparse_updates` semantics).
    """
    prev = phases.switch("labelling")
    nb = len(gb)
    S = len(shapes.level)
    ent = rect_entries(shapes, lay, gb, gimg, np.full(nb, neg, F32))
    groups = list(rect_groups(ent))
    emax, gmax = _box_max(ent, groups, nb)
    low = np.flatnonzero(gmax < neg)
    fallback: list[int] = []
    is_low = np.zeros(nb, bool)
    ent2, groups2 = None, []
    if len(low):
        lb = np.maximum(_nearest_lower_bound(preset, shapes, lay, gb[low], gimg[low]), gmax[low])
        zero = lb <= 0
        if zero.any():
            fallback = unique_ints(gimg[low[zero]]).tolist()
        low = low[~zero]
        is_low[low] = True
        ent2 = rect_entries(shapes, lay, gb[low], gimg[low], lb[~zero].astype(F32))
        ent2.box = low[ent2.box]
        groups2 = list(rect_groups(ent2))
        emax2, gmax2 = _box_max(ent2, groups2, nb)
        gmax[low] = gmax2[low]
    # ---- each box's tying anchors (its best IoU and first best anchor)
    tie1 = _ties(ent, groups, emax, gmax, ~is_low & (gmax >= neg))
    tie1["pass"] = np.ones(len(tie1["e"]), np.int8)
    tie_parts = [(ent, tie1)]
    if ent2 is not None and len(ent2):
        tie2 = _ties(ent2, groups2, emax2, gmax, is_low)
        tie_parts.append((ent2, tie2))
    T = {k: np.concatenate([t[k] for _, t in tie_parts]) for k in ("anchor", "iou", "x1", "y1", "x2", "y2")}
    for k in ("box", "img", "level", "shape"):
        T[k] = np.concatenate([en.__dict__[k][t["e"]] for en, t in tie_parts])
    n1 = len(tie1["e"])
    span = int(lay.counts[gimg[0]:gimg[-1] + 1].sum(axis=1).max()) if nb else 1  # anchors per image < span
    T["key"] = T["img"] * span + T["anchor"]
    box_max = gmax.copy()
    box_best = np.zeros(nb, np.int64)
    box_best_level = np.zeros(nb, np.int64)
    if len(T["key"]):
        o = np.lexsort((T["anchor"], T["box"]))
        st = group_starts(T["box"][o])
        box_best[T["box"][o][st]] = T["anchor"][o][st]
        box_best_level[T["box"][o][st]] = T["level"][o][st]
    # ---- which entries share anchors with another box (pass-2 ties inside a pass-1 rectangle count too)
    pts = None
    if len(T["key"]) > n1:
        e2 = tie_parts[1][1]["e"]
        cell = (tie_parts[1][1]["anchor"] - ent2.a0[e2])
        di, dj = cell // ent2.rstep[e2], (cell % ent2.rstep[e2]) // ent2.cstep[e2]
        pts = {"img": ent2.img[e2], "shape": ent2.shape[e2], "i": ent2.i_lo[e2] + di, "j": ent2.j_lo[e2] + dj}
    shared = _shared_entries(ent, S, pts)
    # ---- labels: unshared entries counted, shared ones grouped by anchor
    ign_e = np.zeros(len(ent), np.int64)
    pos_parts, sh_parts = [], []
    for g in groups:
        t_pos = g.iou >= pos
        kept = g.iou >= neg
        sh = shared[g.idx]
        n_g = len(g.idx)
        ign_e[g.idx] = np.count_nonzero(kept.reshape(n_g, -1), axis=1) - np.count_nonzero(t_pos.reshape(n_g, -1), axis=1)
        if sh.any():
            rows = np.flatnonzero(sh)
            sh_parts.append(_records(ent, g, rows, kept[rows]))
            t_pos[rows] = False
        pos_parts.append(_records(ent, g, None, t_pos))
    P = _cat(pos_parts)
    own = ~shared
    ignored = np.bincount(ent.img[own], weights=ign_e[own], minlength=n_img).astype(np.int64)
    box_ign = np.bincount(ent.box[own], weights=ign_e[own], minlength=nb).astype(np.int64)  # per box (cheap)
    G = _cat(sh_parts)
    ge = G["e"]
    gkey = ent.img[ge] * span + G["anchor"]
    o = _sort_order(gkey)
    ks = gkey[o]
    st = group_starts(ks)
    iou_s = G["iou"][o]
    amax = np.maximum.reduceat(iou_s, st) if len(st) else np.zeros(0, F32)
    grp = np.repeat(np.arange(len(st)), np.diff(np.append(st, len(ks))))
    box_s = ent.box[ge][o]
    a_box = np.minimum.reduceat(np.where(iou_s == amax[grp], box_s, nb), st) if len(st) else np.zeros(0, np.int64)
    a_key = ks[st]
    rep = o[st]
    A = {"img": ent.img[ge][rep], "anchor": G["anchor"][rep], "level": ent.level[ge][rep], "box": a_box,
         "iou": amax, "x1": G["x1"][rep], "y1": G["y1"][rep]}
    a_pos = amax >= pos
    new_parts = []
    # ---- low-quality / forced matches of each box's tying anchors
    if len(T["key"]) and rules.has_low_quality_step(semantics, lowq):
        own_tie = np.zeros(len(T["key"]), bool)
        own_tie[:n1] = ~shared[tie1["e"]]
        upd_key, upd_src, upd_box, upd_iou = _tie_updates(semantics, T, own_tie, box_max, a_key, A, best_box_of)
        at = np.minimum(np.searchsorted(a_key, upd_key), max(len(a_key) - 1, 0))
        hit = (a_key[at] == upd_key) if len(a_key) else np.zeros(len(upd_key), bool)
        own_u = own_tie[upd_src]
        # unshared: the box's own anchor; ignored (below pos) -> positive with that box
        cv = own_u & (upd_iou < pos)
        # grouped anchors: take the update; an ignored one stops being ignored
        h = np.flatnonzero(hit & ~own_u)
        ignored -= np.bincount(T["img"][upd_src[cv]], minlength=n_img)  # grouped ones: counted below
        box_ign -= np.bincount(T["box"][upd_src[cv]], minlength=nb)
        A["box"][at[h]] = upd_box[h]
        A["iou"][at[h]] = upd_iou[h]
        a_pos[at[h]] = True
        new = cv | (~hit & ~own_u)
        src = upd_src[new]
        new_parts.append({"img": T["img"][src], "anchor": T["anchor"][src], "level": T["level"][src],
                          "box": upd_box[new], "iou": upd_iou[new], "x1": T["x1"][src], "y1": T["y1"][src]})
    ignored += np.bincount(A["img"][~a_pos], minlength=n_img)
    box_ign += np.bincount(A["box"][~a_pos], minlength=nb)
    pe = P["e"]
    out = [{"img": ent.img[pe], "anchor": P["anchor"], "level": ent.level[pe], "box": ent.box[pe], "iou": P["iou"],
            "x1": P["x1"], "y1": P["y1"]},
           {k: v[a_pos] for k, v in A.items()}] + new_parts
    for part in out:
        part["box"] = part["box"] + c0
    phases.switch(prev)
    return out, ignored, fallback, (box_max, box_best, box_best_level, box_ign)


def _tie_updates(semantics, T, own_tie, box_max, a_key, A, best_box_of):
    """``(keys, source tie rows, boxes, ious)`` of the anchors the low-quality / forced step labels positive.

    torchvision: every tying anchor takes its own best box (its entry's box when no other box can
    reach it, the grouped best among candidates, else the best of every box of its image); mmdet:
    the last tying box (box order) and that box's best IoU; ssd: each box's first tying anchor
    (lowest index), the last such box winning.
    """
    key = T["key"]
    if semantics == "ssd":
        o = np.lexsort((T["anchor"], T["box"]))
        first = o[group_starts(T["box"][o])]
        sel = first
    else:
        sel = np.arange(len(key))
    if semantics in ("ssd", "mmdet"):
        o = sel[np.lexsort((T["box"][sel], key[sel]))]
        last = np.append(key[o][1:] != key[o][:-1], True)
        src = o[last]
        return key[src], src, T["box"][src], box_max[T["box"][src]]
    o = np.argsort(key, kind="stable")
    src = o[group_starts(key[o])]
    ub, ui = T["box"][src].copy(), T["iou"][src].copy()
    at = np.minimum(np.searchsorted(a_key, key[src]), max(len(a_key) - 1, 0))
    hit = (a_key[at] == key[src]) if len(a_key) else np.zeros(len(src), bool)
    grouped = hit & ~own_tie[src]
    ub[grouped], ui[grouped] = A["box"][at[grouped]], A["iou"][at[grouped]]
    unk = np.flatnonzero(~hit & ~own_tie[src])
    if len(unk):
        s = src[unk]
        b, v = best_box_of(T["img"][s], np.stack((T["x1"][s], T["y1"][s], T["x2"][s], T["y2"][s]), axis=1))
        ub[unk], ui[unk] = b, v
    return key[src], src, ub, ui


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
    box_ign = np.zeros(N, np.int64)
    ignored = np.zeros(n_img, np.int64)
    if N == 0:
        z = lambda dt: np.zeros(0, dt)
        return MatchOutput(z(IDX), z(np.int64), z(np.int8), z(IDX), z(F32), ignored, box_max, box_best,
                           box_best_level, 0, box_ignored=box_ign)
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
        local_best = lambda img, coords: (lambda b, v: (b - c0, v))(*best_box_of(img, coords))
        return _match_chunk(preset, shapes, lay, boxes[c0:c1], box_image[c0:c1], c0, pos, neg, lowq, semantics,
                            local_best, n_img)

    n_workers = max(1, min(len(bounds) - 1, threads if threads else (os.cpu_count() or 1), 8))
    if n_workers > 1:
        from concurrent.futures import ThreadPoolExecutor  # numpy releases the GIL in its kernels

        with ThreadPoolExecutor(n_workers) as pool:
            results = list(pool.map(lambda ab: _chunk(*ab), zip(bounds[:-1], bounds[1:])))
    else:
        results = [_chunk(c0, c1) for c0, c1 in zip(bounds[:-1], bounds[1:])]
    parts = [p for r in results for p in r[0]]
    for (c0, c1), r in zip(zip(bounds[:-1], bounds[1:]), results):
        ignored += r[1]
        fallback_imgs.extend(r[2])
        box_max[c0:c1], box_best[c0:c1], box_best_level[c0:c1], box_ign[c0:c1] = r[3]
    cat = (lambda k, dt: np.concatenate([p[k] for p in parts]).astype(dt) if parts else np.zeros(0, dt))
    res = MatchOutput(cat("img", IDX), cat("anchor", np.int64), cat("level", np.int8), cat("box", IDX),
                      cat("iou", F32), ignored, box_max, box_best, box_best_level, 0, cat("x1", F32), cat("y1", F32),
                      box_ign)
    if fallback_imgs:
        res = _replace_with_dense(res, preset, boxes, box_image, first_box_of_img, ph, pw, sorted(set(fallback_imgs)),
                                  float(pos), float(neg), lowq, semantics)
    return res
