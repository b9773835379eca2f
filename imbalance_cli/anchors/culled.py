"""The culled engine (CPU): only (box, anchor) pairs that can reach a threshold are compared.

Only anchors whose shape (centre-aligned IoU bound) and position (intersection bound
``I >= t (A_g + A_a) / (1 + t)``) can reach the enumeration threshold are compared with a box:
for each (box, shape) entry they form a rectangle of grid rows x columns. The threshold is
``neg_iou``; a box whose best IoU is below it is enumerated again down to a lower bound of its best
IoU (the IoU of its nearest anchor of every shape), so each box's highest IoU and all its ties are
exact. The enumeration, the IoUs, the labels (:mod:`imbalance_cli.anchors.rules`' semantics) and the
statistics' counters are one compiled pass per chunk of images (:mod:`imbalance_cli.anchors.kernel`,
driven by :func:`kernel_pass`); images where some box touches no anchor at all (best IoU 0) fall back
to the dense engine. Background = anchors per image (arithmetic) - positives - ignored. Geometry comes
from :mod:`imbalance_cli.anchors.layouts` (the generator's functions). The NumPy form of the
enumeration (:func:`rect_entries`, :func:`rect_groups`, :func:`enumerate_pairs`) remains for the
single-image matcher's ignored anchors and ``benchmarks/anchor_floor.py``'s pair counts.
"""

from __future__ import annotations

import copy
import os
from types import SimpleNamespace

import numpy as np

from imbalance_cli.anchors import phases, rules
from imbalance_cli.anchors.generator import F32, grid_anchors_numpy, num_anchors
from imbalance_cli.anchors.iou import aligned_iou32
from imbalance_cli.anchors.layouts import ImageLayouts, ShapeTable
from imbalance_cli.anchors.presets import AnchorPreset
from imbalance_cli.anchors.rules import IDX, MatchOutput, group_starts


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
LADDER = np.array(sorted({1, 2, 3} | {int(m * 2**k) for k in range(2, 40) for m in (1, 1.5)}), dtype=np.int64)
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


# long: one vectorised derivation of the rectangles' bounds, in the order the docstring's two conditions read
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
    rows, cols = (
        _axis(lay.row_extent, img, si, i_lo, ni, gb[bi][:, 1], gb[bi][:, 3]),
        _axis(lay.col_extent, img, si, j_lo, nj, gb[bi][:, 0], gb[bi][:, 2]),
    )
    phases.switch(prev)
    return Entries(
        box=bi,
        shape=si,
        img=img,
        level=lvl,
        i_lo=i_lo,
        j_lo=j_lo,
        ni=ni,
        nj=nj,
        t=t[bi],
        a0=lay.offset[img, lvl] + (i_lo * gw + j_lo) * per + shapes.k[si],
        rstep=gw * per,
        cstep=per,
        rs=rows[0],
        cs=cols[0],
        area=((gb[:, 2] - gb[:, 0]) * (gb[:, 3] - gb[:, 1]))[bi],
        rows=rows[1],
        cols=cols[1],
    )


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
    return start, {
        "a1": np.concatenate((a1, z)),
        "a2": np.concatenate((a2, z)),
        "overlap": np.concatenate((ov, z)),
        "size": np.concatenate((a2 - a1, one)),
    }


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
            yield _rect(ent, order[a : min(s1, a + step)], PI, PJ)


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
    out = {
        "e": e,
        "anchor": ent.a0[e] + di * ent.rstep[e] + dj * ent.cstep[e],
        "iou": iou,
        "x1": g.x1[r, dj],
        "y1": g.y1[r, di],
    }
    if corners == "xyxy":
        out["x2"], out["y2"] = ent.cols["a2"][g.ci[r, dj]], ent.rows["a2"][g.ri[r, di]]
    return out


def _cat(parts: list, corners: str = "xy") -> dict:
    keys = ("e", "anchor", "iou", "x1", "y1") + (("x2", "y2") if corners == "xyxy" else ())
    if not parts:
        return {k: np.zeros(0, np.int64 if k in ("e", "anchor") else F32) for k in keys}
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def enumerate_pairs(
    preset, shapes: ShapeTable, lay: ImageLayouts, gb: np.ndarray, gimg: np.ndarray, t: np.ndarray, box_ids: np.ndarray
):
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
    return {
        "box": box_ids[ent.box[e]],
        "local": ent.box[e],
        "img": ent.img[e],
        "anchor": rec["anchor"],
        "level": ent.level[e],
        "iou": rec["iou"],
        "coords": np.stack((rec["x1"], rec["y1"], rec["x2"], rec["y2"]), axis=1),
    }


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


# long: one loop over the handed-over images, each filling the same seven positive columns, then the output
def _replace_with_dense(
    res: MatchOutput, preset, boxes, box_image, first_box_of_img, ph, pw, images, pos, neg, lowq, semantics
) -> MatchOutput:
    """Recompute the given images with the dense engine (boxes that touch no anchor at all)."""
    import torch

    from imbalance_cli.anchors.dense import dense_match_batched

    images = np.asarray(images, np.int64)
    keep = ~np.isin(res.pos_image, images)
    parts = {
        "img": [res.pos_image[keep]],
        "anchor": [res.pos_anchor[keep]],
        "level": [res.pos_level[keep]],
        "box": [res.pos_box[keep]],
        "iou": [res.pos_iou[keep]],
        "x1": [res.pos_x1[keep]],
        "y1": [res.pos_y1[keep]],
    }
    ignored = res.ignored_per_image.copy()
    ignored_box = res.box_ignored.copy()
    for im in images:
        b0, b1 = int(first_box_of_img[im]), int(first_box_of_img[im + 1])
        anc, lv = grid_anchors_numpy(preset, int(ph[im]), int(pw[im]))
        out = dense_match_batched(
            torch.from_numpy(anc),
            torch.from_numpy(boxes[b0:b1])[None],
            torch.ones((1, b1 - b0), dtype=torch.bool),
            pos,
            neg,
            lowq,
            semantics,
        )
        m = out.matched[0].numpy()
        p = np.flatnonzero(m >= 0)
        parts["img"].append(np.full(len(p), im))
        parts["anchor"].append(p)
        parts["level"].append(lv[p])
        parts["box"].append(b0 + m[p])
        parts["iou"].append(out.iou[0].numpy()[p])
        parts["x1"].append(anc[p, 0])
        parts["y1"].append(anc[p, 1])
        ignored[im] = int((m == -2).sum())
        ignored_box[b0:b1] = np.bincount(out.anchor_box[0].numpy()[m == -2], minlength=b1 - b0)
        res.box_max_iou[b0:b1] = out.box_max[0].numpy()
        res.box_best_anchor[b0:b1] = out.box_best[0].numpy()
        res.box_best_level[b0:b1] = lv[out.box_best[0].numpy()]

    def cat(k, dt):
        return np.concatenate(parts[k]).astype(dt)

    return MatchOutput(
        cat("img", IDX),
        cat("anchor", np.int64),
        cat("level", np.int8),
        cat("box", IDX),
        cat("iou", F32),
        ignored,
        res.box_max_iou,
        res.box_best_anchor,
        res.box_best_level,
        len(images),
        cat("x1", F32),
        cat("y1", F32),
        ignored_box,
    )


# ----------------------------------------------------------------------------------------------
# the compiled pass (imbalance_cli.anchors.kernel) over a chunk of images
# ----------------------------------------------------------------------------------------------


#: per padded size, the tables :class:`Geometry` reads (:func:`_size_tables`), kept across chunks: building them
#: is per size, not per image (most chunks repeat the same few sizes)
_SIZE_TABLES: dict = {}


def _size_tables(preset: AnchorPreset, shapes: ShapeTable, h: int, w: int) -> tuple:
    """One padded size's grid rows (levels, 4: rows, columns, first anchor, anchors per location), steps (levels,
    2), anchors, y / x extents (float32 (rows, 2)) and each shape's first row / column in them (from
    :meth:`ImageLayouts.axis_tables`), cached in :data:`_SIZE_TABLES` for this ``preset`` object."""
    key = (id(preset), h, w)
    hit = _SIZE_TABLES.get(key)
    if hit is not None and hit[0] is preset:
        return hit[1]
    lay = ImageLayouts(preset, np.array([h]), np.array([w]))
    lay.axis_tables(preset, shapes)
    per = np.broadcast_to(lay.per_loc[None, :], lay.grid_h.shape)
    ybase, xbase, y1, y2, x1, x2 = lay._tables
    out = (
        np.stack([lay.grid_h, lay.grid_w, lay.offset, per], axis=2)[0].astype(np.int64),
        np.stack([lay.step_x, lay.step_y], axis=2)[0].astype(np.float64),
        int(lay.counts.sum()),
        np.stack([y1, y2], 1).astype(F32),
        np.stack([x1, x2], 1).astype(F32),
        ybase[0].astype(np.int64),
        xbase[0].astype(np.int64),
    )
    if len(_SIZE_TABLES) >= 1024:  # bounded: sizes beyond it are built again
        _SIZE_TABLES.clear()
    _SIZE_TABLES[key] = (preset, out)
    return out


class Geometry:
    """What the compiled pass reads about some images (per image and level) and the preset's anchor shapes.

    ``gi`` int64 (images, levels, 4): grid rows, grid columns, first anchor index, anchors per location;
    ``gf`` float64 (images, levels, 2): grid steps x, y; ``n_anch`` anchors per image; ``size_id`` each image's
    padded size in ``ybase`` / ``xbase`` (sizes, shapes): the first row of ``ytab`` / column of ``xtab``
    (float32 (y1, y2) / (x1, x2) extents from the generator, :meth:`ImageLayouts.axis_tables`) of a shape;
    ``sh_i`` (shapes, 2) level and index within the location, ``sh_f`` (shapes, 5) offsets ``ox``, ``oy``,
    sizes ``wa``, ``ha`` and the smallest float32 area ``area_lo`` (float64); ``slack`` the bounds' margin;
    ``sh_ord`` the shapes by ``area_lo`` (``alo_sorted``), ``delta`` the largest float32 area above ``area_lo``.
    """

    def __init__(self, preset: AnchorPreset, padded_h: np.ndarray, padded_w: np.ndarray):
        ph, pw = np.asarray(padded_h, np.int64).reshape(-1), np.asarray(padded_w, np.int64).reshape(-1)
        shapes = ShapeTable(preset, int(ph[0]), int(pw[0]))
        sizes, inv = np.unique(np.stack([ph, pw], 1), axis=0, return_inverse=True)
        parts = [_size_tables(preset, shapes, int(h), int(w)) for h, w in sizes]
        c = np.ascontiguousarray
        self.size_id = c(inv.reshape(-1), dtype=np.int64)
        self.gi = c(np.stack([q[0] for q in parts])[self.size_id])
        self.gf = c(np.stack([q[1] for q in parts])[self.size_id])
        self.n_anch = c(np.array([q[2] for q in parts], np.int64)[self.size_id])
        ny = np.cumsum([0] + [len(q[3]) for q in parts[:-1]])
        nx = np.cumsum([0] + [len(q[4]) for q in parts[:-1]])
        self.ybase = c(np.stack([q[5] + o for q, o in zip(parts, ny)]), dtype=np.int64)
        self.xbase = c(np.stack([q[6] + o for q, o in zip(parts, nx)]), dtype=np.int64)
        self.ytab, self.xtab = c(np.concatenate([q[3] for q in parts])), c(np.concatenate([q[4] for q in parts]))
        sides = SimpleNamespace(padded_h=ph, padded_w=pw)  # all rounding_slack reads of the layouts
        self.slack = float(max(shapes.slack, rounding_slack(sides, shapes)))
        s2 = 2 * self.slack
        area_lo = np.maximum(shapes.wa - s2, 0) * np.maximum(shapes.ha - s2, 0)
        self.sh_i = c(np.stack([shapes.level, shapes.k], 1), dtype=np.int64)
        self.sh_f = c(np.stack([shapes.ox, shapes.oy, shapes.wa, shapes.ha, area_lo], 1), dtype=np.float64)
        # shapes by area, for the kernel's necessary condition on a (box, shape) pair's areas
        self.sh_ord = c(np.argsort(area_lo, kind="stable"), dtype=np.int64)
        self.alo_sorted = c(area_lo[self.sh_ord], dtype=np.float64)
        self.delta = float(np.max((shapes.wa + s2) * (shapes.ha + s2) - area_lo, initial=0.0))

    def images(self, i0: int, i1: int) -> "Geometry":
        """The same geometry for images ``i0 .. i1 - 1`` (views)."""
        g = copy.copy(self)
        g.gi, g.gf, g.n_anch, g.size_id = self.gi[i0:i1], self.gf[i0:i1], self.n_anch[i0:i1], self.size_id[i0:i1]
        return g

    @property
    def num_levels(self) -> int:
        """Pyramid levels."""
        return self.gi.shape[1]

    @property
    def kernel_tuple(self) -> tuple:
        """The geometry argument of :func:`imbalance_cli.anchors.kernel.label_images`."""
        return (
            self.gi,
            self.gf,
            self.size_id,
            self.ybase,
            self.xbase,
            self.ytab,
            self.xtab,
            self.sh_i,
            self.sh_f,
            self.sh_ord,
            self.alo_sorted,
            self.delta,
            self.slack,
        )


def low_quality_mode(semantics: str, allow_low_quality: bool) -> int:
    """The kernel's low-quality / forced match mode (:data:`imbalance_cli.anchors.kernel.LQ_NONE` ...)."""
    from imbalance_cli.anchors import kernel as K

    if not rules.has_low_quality_step(semantics, allow_low_quality):
        return K.LQ_NONE
    return {"torchvision": K.LQ_TORCHVISION, "mmdet": K.LQ_MMDET, "ssd": K.LQ_SSD}[semantics]


class ChunkStats:
    """Inputs and fixed-size outputs of the counting in :func:`kernel_pass` (see :func:`culled_chunk_statistics`)."""

    def __init__(
        self, box_class, num_classes, num_levels, in_sample, pos_edges, pos_t, neg_edges, spatial_bins, spatial_range
    ):
        self.box_class = np.ascontiguousarray(box_class, dtype=np.int64)
        self.in_sample = np.ascontiguousarray(in_sample, dtype=np.bool_)
        self.pos_edges = np.ascontiguousarray(pos_edges, dtype=np.float64)
        self.pos_t = F32(pos_t)
        self.neg_edges = np.asarray(neg_edges, dtype=np.float64)
        self.sp_lo, self.sp_hi = float(spatial_range[0]), float(spatial_range[1])
        self.per_class = np.zeros(max(int(num_classes), 1), np.int64)
        self.per_level = np.zeros(num_levels, np.int64)
        self.pos_hist = np.zeros(len(pos_edges) - 1, np.int64)
        self.spatial = np.zeros((spatial_bins, spatial_bins), np.int64)
        self.counters = np.zeros(2, np.int64)
        self.negative = np.zeros(len(neg_edges) - 1, np.int64)
        self.zero = 0

    @staticmethod
    def none(n_boxes: int, n_images: int, num_levels: int) -> "ChunkStats":
        """Placeholders of the right types when only labels are wanted."""
        return ChunkStats(
            np.zeros(n_boxes, np.int64),
            1,
            num_levels,
            np.zeros(n_images, bool),
            np.zeros(2),
            1.0,
            np.zeros(2),
            1,
            (-1.0, 1.0),
        )

    def kernel_tuple(self, want: bool) -> tuple:
        """The ``stats`` argument of :func:`imbalance_cli.anchors.kernel.label_images` (counted with ``want``)."""
        return (
            want,
            self.box_class,
            self.per_class,
            self.per_level,
            self.pos_edges,
            self.pos_t,
            self.pos_hist,
            self.spatial,
            self.sp_lo,
            self.sp_hi,
            self.counters,
            self.in_sample,
        )


def kernel_pass(
    geo: Geometry,
    boxes: np.ndarray,
    box_image: np.ndarray,
    pos: float,
    neg: float,
    lq: int,
    *,
    records: bool,
    stats: ChunkStats | None = None,
) -> dict:
    """The compiled pass over some images (``boxes`` float32 (N, 4), ``box_image`` sorted rows of ``geo``'s images).

    Returns ``img_i`` (images, 3: foreground, ignored, fallback flag), ``box_max`` (N,), ``box_i`` (N, 4: first
    best anchor, its level, positives, ignored anchors); with ``records`` the positives ``rec_i`` (image, anchor,
    level, box) and ``rec_f`` (IoU, anchor x1, y1); with ``stats`` its counters filled (fallback images, flagged
    in ``img_i``, are left out of everything).
    """
    from imbalance_cli.anchors import kernel as K

    n_img, N = len(geo.n_anch), len(boxes)
    boxes = np.ascontiguousarray(boxes, dtype=F32)
    box_image = np.ascontiguousarray(box_image, dtype=np.int64)
    img_start = np.searchsorted(box_image, np.arange(n_img + 1)).astype(np.int64)
    prev = phases.switch("enumeration")
    rects, box_rect = K.enumerate_rects(
        boxes, box_image, F32(neg), geo.gi, geo.gf, geo.sh_i, geo.sh_f, geo.sh_ord, geo.alo_sorted, geo.delta, geo.slack
    )
    st = stats if stats is not None else ChunkStats.none(N, n_img, geo.num_levels)
    out, lists = _label_chunks(
        geo,
        boxes,
        box_image,
        img_start,
        (rects, box_rect),
        (F32(pos), F32(neg), lq),
        records,
        st,
        stats is not None,
    )
    img_i = out[2]
    fallback = img_i[:, K.IMG_FALLBACK] == 1
    if stats is not None and F32(st.neg_edges[-1]) > 0 and st.in_sample.any():
        phases.switch("histograms")
        _negatives(geo, boxes, img_start, img_i, fallback, st, lists[5], lists[6])
    phases.switch(prev)
    npos = lists[4]
    return {
        "img_i": img_i,
        "box_max": out[0],
        "box_i": out[1],
        "rec_i": lists[2][:npos],
        "rec_f": lists[3][:npos],
        "fallback": np.flatnonzero(fallback),
    }


def _label_chunks(geo, boxes, box_image, img_start, enum, thresholds, records, st, want):
    """IoUs and labels of every image in one call of the compiled pass. Returns ``(box_max, box_i, img_i)`` and
    the kernel's lists ``(ties, extra, rec_i, rec_f, npos, smp, nsmp)``."""
    from imbalance_cli.anchors import kernel as K

    pos32, neg32, lq = thresholds
    n_img, N = len(geo.n_anch), len(boxes)
    a_max = int(geo.n_anch.max(initial=1))
    state = (
        np.zeros(a_max, np.uint8),
        np.empty(a_max, F32),
        np.empty(a_max, np.int32),
        np.empty(a_max, np.int64),
        np.empty(a_max, np.int64),
    )
    ties, extra, smp = (np.empty((1024, 2), np.int64) for _ in range(3))
    rec_i, rec_f = np.empty((1024 if records else 0, 4), np.int64), np.empty((1024 if records else 0, 3), F32)
    out = (np.zeros(N, F32), np.zeros((N, 4), np.int64), np.zeros((n_img, 3), np.int64))
    lists = (ties, extra, rec_i, rec_f, 0, smp, 0)
    phases.switch("labelling")  # the IoUs are computed inside the labelling (no buffer)
    lists = K.label_images(
        0,
        n_img,
        boxes,
        img_start,
        geo.n_anch,
        geo.kernel_tuple,
        enum,
        pos32,
        neg32,
        lq,
        state,
        out,
        st.kernel_tuple(want),
        records,
        lists,
    )
    return out, lists


def _negatives(geo, boxes, img_start, img_i, fallback, st, smp, nsmp) -> None:
    """The sampled images' negatives' best-IoU histogram into ``st.negative`` and their count at IoU 0 ``st.zero``."""
    from imbalance_cli.anchors import kernel as K

    imgs = np.flatnonzero(st.in_sample & ~fallback)
    nonzero = np.zeros(len(imgs), np.int64)
    K.negative_histogram(
        imgs,
        boxes,
        img_start,
        geo.n_anch,
        geo.gi,
        geo.gf,
        geo.size_id,
        geo.ybase,
        geo.xbase,
        geo.ytab,
        geo.xtab,
        geo.sh_i,
        geo.sh_f,
        geo.slack,
        smp,
        nsmp,
        F32(st.neg_edges[-1]),
        st.neg_edges.astype(F32),
        st.negative,
        nonzero,
    )
    negatives = geo.n_anch[imgs] - img_i[imgs, K.IMG_FG] - img_i[imgs, K.IMG_IGN]
    st.zero = int(negatives.sum() - nonzero.sum())


def warm_kernel(preset: AnchorPreset) -> None:
    """Load the compiled pass (or, the first time after an install, compile it) by running it on one small image.

    Called before worker processes are forked (:func:`imbalance_cli.anchors.run.run_chunks`): they inherit it
    instead of each loading it again (about 0.3-0.6 CPU s per process) or compiling it (about 20 CPU s).
    """
    geo = Geometry(preset, np.array([256]), np.array([256]))
    st = ChunkStats(
        np.zeros(1, np.int64),
        1,
        geo.num_levels,
        np.ones(1, bool),
        np.linspace(0, 1, 21),
        0.5,
        np.linspace(0, 0.4, 9),
        4,
        (-0.5, 1.5),
    )
    kernel_pass(geo, np.array([[8, 8, 72, 56]], F32), np.zeros(1, np.int64), 0.5, 0.4, 1, records=True, stats=st)


def culled_chunk_statistics(
    preset: AnchorPreset,
    semantics: str,
    boxes: np.ndarray,
    box_image: np.ndarray,
    padded_h: np.ndarray,
    padded_w: np.ndarray,
    stats: ChunkStats,
) -> tuple[dict, np.ndarray]:
    """One chunk's anchor statistics from the compiled pass, no positive kept: ``(partial, fallback images)``.

    ``partial`` has the keys of :func:`imbalance_cli.stats.anchors.chunk_statistics`; images whose boxes reach
    no anchor (listed in the second value) are left out of it (all zero) for the caller to label densely.
    """
    from imbalance_cli.anchors import kernel as K

    pos, neg, lowq = rules.thresholds(preset, semantics)
    n_img = len(padded_h)
    if len(boxes) == 0:
        geo = None
        out = {
            "img_i": np.zeros((n_img, 3), np.int64),
            "box_max": np.zeros(0, F32),
            "box_i": np.zeros((0, 4), np.int64),
            "fallback": np.zeros(0, np.int64),
        }
        if stats.in_sample.any() and stats.neg_edges[-1] > 0:
            stats.zero = int(num_anchors(preset, padded_h[stats.in_sample], padded_w[stats.in_sample]).sum())
    else:
        geo = Geometry(preset, padded_h, padded_w)
        out = kernel_pass(
            geo, boxes, box_image, pos, neg, low_quality_mode(semantics, lowq), records=False, stats=stats
        )
    bi = out["box_i"]
    part = {
        "foreground": out["img_i"][:, K.IMG_FG].copy(),
        "ignored": out["img_i"][:, K.IMG_IGN].copy(),
        "box_max_iou": out["box_max"],
        "box_best_level": bi[:, K.BOX_LEVEL].copy(),
        "box_positives": bi[:, K.BOX_POS].copy(),
        "box_ignored": bi[:, K.BOX_IGN].copy(),
        "per_class": stats.per_class,
        "per_level": stats.per_level,
        "positive_iou": stats.pos_hist,
        "low_quality": int(stats.counters[K.CNT_LOW_QUALITY]),
        "fallback": len(out["fallback"]),
        "spatial": stats.spatial,
        "outside": int(stats.counters[K.CNT_OUTSIDE]),
        "negative": stats.negative,
        "zero": int(stats.zero),
    }
    return part, out["fallback"]


def culled_match_dataset(
    preset: AnchorPreset,
    boxes: np.ndarray,
    box_image: np.ndarray,
    padded_h: np.ndarray,
    padded_w: np.ndarray,
    *,
    pos_iou: float | None = None,
    neg_iou: float | None = None,
    allow_low_quality: bool | None = None,
    semantics: str = "torchvision",
    chunk_boxes: int = 10000,
    threads: int | None = None,
) -> MatchOutput:
    """Culled matcher over many images at once (see module docstring), every positive kept.

    ``boxes`` float32 (N, 4) in resized-image pixels, ``box_image`` (N,) image rows **sorted
    ascending** (a box's position among its image's boxes is its gt index), ``padded_h/w``
    (n_img,) padded sizes. Returns a :class:`MatchOutput` whose ``pos_box`` index ``boxes`` (positives
    image by image). Chunks of about ``chunk_boxes`` boxes (whole images) run on ``threads`` threads
    (default: CPU count, at most 8); the output does not depend on either. For bounded memory over a
    large dataset use :func:`imbalance_cli.anchors.run.run_anchor_pass`.
    """
    rules.check(semantics, "culled")
    pos, neg, lowq = rules.thresholds(preset, semantics, pos_iou, neg_iou, allow_low_quality)
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, dtype=np.int64)
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    n_img, N = len(ph), len(boxes)
    if N and np.any(np.diff(box_image) < 0):
        raise ValueError("box_image must be sorted ascending")
    if preset.kind == "ssd" and n_img and (np.any(ph != ph[0]) or np.any(pw != pw[0])):
        raise ValueError("ssd presets need one fixed image size")
    if N == 0:
        return _empty_output(n_img)
    img_start = np.searchsorted(box_image, np.arange(n_img + 1))
    spans, results = _run_chunks(
        Geometry(preset, ph, pw),
        boxes,
        box_image,
        img_start,
        (pos, neg, low_quality_mode(semantics, lowq)),
        chunk_boxes,
        threads,
    )
    res, fallback = _merge_chunks(spans, results, img_start)
    if len(fallback):
        res = _replace_with_dense(
            res, preset, boxes, box_image, img_start, ph, pw, fallback.tolist(), float(pos), float(neg), lowq, semantics
        )
    return res


def _empty_output(n_img: int) -> MatchOutput:
    """The output for no box: every image with no positive and no ignored anchor."""

    def z(dt):
        return np.zeros(0, dt)

    return MatchOutput(
        z(IDX),
        z(np.int64),
        z(np.int8),
        z(IDX),
        z(F32),
        np.zeros(n_img, np.int64),
        z(F32),
        z(np.int64),
        z(np.int64),
        0,
        z(F32),
        z(F32),
        z(np.int64),
    )


def _run_chunks(geo, boxes, box_image, img_start, thresholds, chunk_boxes, threads) -> tuple[list, list]:
    """:func:`kernel_pass` with records over chunks of whole images of ~``chunk_boxes`` boxes, on ``threads``
    threads. Returns the chunks' (first, end) images and their results."""
    pos, neg, lq = thresholds
    n_img = len(img_start) - 1
    cuts = [0]
    while cuts[-1] < n_img:  # chunks of whole images
        i = cuts[-1]
        cuts.append(min(n_img, max(i + 1, int(np.searchsorted(img_start, img_start[i] + chunk_boxes, "right")) - 1)))

    def _chunk(i0: int, i1: int) -> dict:
        c0, c1 = int(img_start[i0]), int(img_start[i1])
        return kernel_pass(geo.images(i0, i1), boxes[c0:c1], box_image[c0:c1] - i0, pos, neg, lq, records=True)

    spans = list(zip(cuts[:-1], cuts[1:]))
    n_workers = max(1, min(len(spans), threads if threads else (os.cpu_count() or 1), 8))
    if n_workers > 1:
        from concurrent.futures import ThreadPoolExecutor  # the kernel releases the GIL

        with ThreadPoolExecutor(n_workers) as pool:
            return spans, list(pool.map(lambda ab: _chunk(*ab), spans))
    return spans, [_chunk(i0, i1) for i0, i1 in spans]


def _merge_chunks(spans: list, results: list, img_start: np.ndarray) -> tuple[MatchOutput, np.ndarray]:
    """The chunks' results as one :class:`MatchOutput` (dataset indices) and the images left to the dense engine."""
    from imbalance_cli.anchors import kernel as K

    box_max = np.concatenate([r["box_max"] for r in results])
    box_i = np.concatenate([r["box_i"] for r in results])
    img_i = np.concatenate([r["img_i"] for r in results])
    rec_i = np.concatenate([r["rec_i"] + np.array([i0, 0, 0, img_start[i0]]) for (i0, _), r in zip(spans, results)])
    rec_f = np.concatenate([r["rec_f"] for r in results])
    fallback = np.concatenate([r["fallback"] + i0 for (i0, _), r in zip(spans, results)])
    res = MatchOutput(
        rec_i[:, 0].astype(IDX),
        rec_i[:, 1].copy(),
        rec_i[:, 2].astype(np.int8),
        rec_i[:, 3].astype(IDX),
        rec_f[:, 0].copy(),
        img_i[:, K.IMG_IGN].copy(),
        box_max,
        box_i[:, K.BOX_BEST].copy(),
        box_i[:, K.BOX_LEVEL].copy(),
        0,
        rec_f[:, 1].copy(),
        rec_f[:, 2].copy(),
        box_i[:, K.BOX_IGN].copy(),
    )
    return res, fallback
