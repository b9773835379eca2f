"""The culled engine's compiled pass (numba): enumerate, compare, label and count in one sweep per image.

Three functions, each called on a range of images of one chunk (numpy arrays in, counters out; no
Python object per pair):

1. :func:`enumerate_rects` -- the enumeration: for every (box, anchor shape) pair whose
   centre-aligned IoU can reach ``neg_iou``, the grid rectangle of rows x columns that can reach it
   (the bounds of :func:`imbalance_cli.anchors.culled.rect_entries`, same float64 arithmetic);
2. :func:`label_images` -- per image: the IoU of every anchor of its rectangles, torchvision's float32
   ``box_iou`` arithmetic element for element (``inter = iw * ih``, ``union = (area_box +
   area_anchor) - inter``, ``iou = inter / union``; no fast-math, so no reassociation or fused
   multiply-add), folded as it is computed into each anchor's best IoU and first best box (no IoU
   buffer), each box's highest IoU (boxes below ``neg_iou`` are enumerated again, once, at a lower
   bound of it, the IoU of their nearest anchor of every shape, keeping the running maximum's ties),
   each box's tying anchors (for the others their rectangles' IoUs computed again, the same
   operations) and first best anchor, the low-quality / forced matches
   of :mod:`imbalance_cli.anchors.rules` (torchvision: a tying anchor takes its own best box among
   *all* boxes of its image; mmdet: the last tying box; ssd: each box's first best anchor, the last
   box winning), then the labels, counted from the image's list of touched anchors (each once) into
   per-image, per-box and fixed-size counters, or kept as positive records box by box;
3. :func:`negative_histogram` -- the sampled images' negative anchors' best IoU (every anchor with
   an IoU > 0 with some box, enumerated at the smallest float32 threshold).

An image where some box reaches no anchor at all (best IoU 0, or a non-finite box) is not labelled
here: it is flagged and the caller hands it to the dense engine (torchvision's degenerate
low-quality rule makes every anchor positive there).

Per-anchor state (best IoU, box, flags) lives in arrays sized to the largest image's anchors and is
reset through the list of anchors an image touched, so an image costs its rectangles, not its
anchors. Compiled with ``cache=True`` (first use after an install compiles, later processes load
the cache) and ``nogil=True`` (threads run chunks in parallel).
"""

from __future__ import annotations

import numpy as np
from numba import njit

F32 = np.float32
_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}  # bit-exact float32: no fastmath


def _jit(fn, **more):
    """``njit`` with the on-disk cache, or without it where numba finds no writable cache location (it refuses
    ``cache=True`` then: read-only package and no user cache directory; ``NUMBA_CACHE_DIR`` sets one): compiled in
    memory on every run instead of failing at import."""
    try:
        return njit(**_JIT, **more)(fn)
    except RuntimeError:
        return njit(**{**_JIT, "cache": False}, **more)(fn)


def _step(fn):
    """A step of :func:`label_images` (or a helper of its per-anchor loops), inlined into it by numba
    (``inline="always"``): called as a function it would pay a reference count on every array of its tuple
    arguments per call (2.3x the labelling time)."""
    return _jit(fn, inline="always")


#: low-quality / forced match modes of :func:`label_images`
LQ_NONE, LQ_TORCHVISION, LQ_MMDET, LQ_SSD = 0, 1, 2, 3
#: columns of the per-image output ``img_i``: foreground, ignored, fallback (1: handed to the dense engine)
IMG_FG, IMG_IGN, IMG_FALLBACK = 0, 1, 2
#: columns of the per-box output ``box_i``: first best anchor, its level, positives, ignored anchors
BOX_BEST, BOX_LEVEL, BOX_POS, BOX_IGN = 0, 1, 2, 3
#: the ``counters`` output: positives below the preset's positive IoU, positives outside the spatial range
CNT_LOW_QUALITY, CNT_OUTSIDE = 0, 1


# ----------------------------------------------------------------------------------------------
# scalar helpers
# ----------------------------------------------------------------------------------------------


@_jit
def _nmin(a, b):
    """``numpy.minimum`` of two scalars (NaN propagates)."""
    return a if (a < b or a != a) else b


@_jit
def _nmax(a, b):
    """``numpy.maximum`` of two scalars (NaN propagates)."""
    return a if (a > b or a != a) else b


@_jit
def _bounds(gx1, gy1, gx2, gy2, t, ox, oy, wa, ha, area_lo, slack, sx, sy, gh, gw):
    """Grid rectangle ``(i_lo, i_hi, j_lo, j_hi)`` of one (box, shape) at threshold ``t`` (empty: ``i_hi < i_lo``).

    The float64 arithmetic of :func:`imbalance_cli.anchors.culled.rect_entries`, in its order: the
    centre-aligned bound ``min(wg, wa) min(hg, ha) / (A_g + A_a - inter) >= t`` and the intersection
    an anchor needs, ``I >= t (A_g + A_a) / (1 + t)``, bound the rows and the columns.
    """
    wg = gx2 - gx1
    hg = gy2 - gy1
    ag = wg * hg
    tt = t * (1 - 1e-5) - 1e-7
    iw0 = _nmin(wg, wa + 2 * slack)
    ih0 = _nmin(hg, ha + 2 * slack)
    inter0 = iw0 * ih0
    ub = inter0 / (ag + area_lo - inter0)
    if not ub >= tt:
        return 0, -1, 0, -1
    imin = _nmax(tt / (1 + tt), 0.0) * (ag + area_lo) if tt > 0 else 0.0
    my = imin / iw0 if iw0 > 0 else 0.0
    mx = imin / ih0 if ih0 > 0 else 0.0
    ilo = _nmax(np.ceil((gy1 + my - ha - oy - slack) / sy), 0.0)
    ihi = _nmin(np.floor((gy2 - my - oy + slack) / sy), float(gh - 1))
    jlo = _nmax(np.ceil((gx1 + mx - wa - ox - slack) / sx), 0.0)
    jhi = _nmin(np.floor((gx2 - mx - ox + slack) / sx), float(gw - 1))
    if not (ihi >= ilo and jhi >= jlo):  # also NaN / inf bounds (a box beyond float32)
        return 0, -1, 0, -1
    return int(ilo), int(ihi), int(jlo), int(jhi)


@_step
def _shape_bounds(g0, g1, g2, g3, t, s, lvl, im, gi, gf, sh_f, slack):
    """:func:`_bounds` of shape ``s`` (of level ``lvl``) on image ``im``'s grid."""
    return _bounds(
        g0,
        g1,
        g2,
        g3,
        t,
        sh_f[s, 0],
        sh_f[s, 1],
        sh_f[s, 2],
        sh_f[s, 3],
        sh_f[s, 4],
        slack,
        gf[im, lvl, 0],
        gf[im, lvl, 1],
        gi[im, lvl, 0],
        gi[im, lvl, 1],
    )


@_jit
def _iou(gx1, gy1, gx2, gy2, area_g, ax1, ay1, ax2, ay2):
    """float32 IoU of one box and one anchor, ``box_iou``'s operations (``area_g`` precomputed the same way)."""
    zero = np.float32(0)
    iw = _nmin(gx2, ax2) - _nmax(gx1, ax1)
    if iw < zero:
        iw = zero
    ih = _nmin(gy2, ay2) - _nmax(gy1, ay1)
    if ih < zero:
        ih = zero
    inter = iw * ih
    return inter / ((area_g + (ax2 - ax1) * (ay2 - ay1)) - inter)


@_jit
def _reserve(a, n, more):
    """``a`` (rows, k) if ``n + more`` rows fit, else a copy of its first ``n`` rows with room for at least that many
    (doubling). Called before a loop fills rows, never inside it: an array assigned in a hot loop keeps numba from
    optimising the loop (measured 4x slower)."""
    if n + more <= a.shape[0]:
        return a
    b = np.empty((max(2 * a.shape[0], n + more, 16), a.shape[1]), a.dtype)
    b[:n] = a[:n]
    return b


@_jit
def _count_le(edges, v):
    """Number of ``edges`` (sorted) that are <= ``v`` (``searchsorted(edges, v, "right")``)."""
    lo, hi = 0, len(edges)
    while lo < hi:
        mid = (lo + hi) >> 1
        if edges[mid] <= v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _pack(s, i, j):
    return (s << 40) | (i << 20) | j


@_jit
def _count_lt(edges, v):
    """Number of ``edges`` (sorted) that are < ``v`` (``searchsorted(edges, v, "left")``)."""
    lo, hi = 0, len(edges)
    while lo < hi:
        mid = (lo + hi) >> 1
        if edges[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@_jit
def _shape_span(gx1, gy1, gx2, gy2, t, alo_sorted, delta):
    """``(q0, q1)``: only the shapes at positions ``q0 .. q1 - 1`` of the area order can pass :func:`_bounds`.

    From its test ``inter0 / (A_g + area_lo - inter0) >= tt`` with ``inter0 <= min(A_g, A_hi)``: ``area_lo <=
    A_g / tt`` and ``A_hi >= tt A_g / (1 + tt)``, where ``A_hi - area_lo <= delta`` (a necessary condition, with a
    relative margin of 1e-9 against rounding: the rectangles are the same as testing every shape).
    """
    S = len(alo_sorted)
    tt = t * (1 - 1e-5) - 1e-7
    ag = (gx2 - gx1) * (gy2 - gy1)
    if not (tt > 0 and ag > 0 and ag < np.inf):
        return 0, S
    return (_count_lt(alo_sorted, tt * ag / (1 + tt) * (1 - 1e-9) - delta), _count_le(alo_sorted, ag / tt * (1 + 1e-9)))


@_step
def _spatial_bin(a1, g1, g2, lo, hi, scale, bins):
    """Bin of an anchor's corner ``a1`` in its box's frame ``(a1 - g1) / (g2 - g1)`` (float64), or -1 outside
    ``[lo, hi]`` (as :func:`imbalance_cli.stats.anchors.spatial_histogram`)."""
    r = (np.float64(a1) - g1) / (g2 - g1)
    if r >= lo and r <= hi:
        return min(int((r - lo) * scale), bins - 1)
    return -1


@_step
def _pos_bin(v, edges):
    """Bin of a float32 IoU in float64 ``edges`` (:func:`imbalance_cli.stats.anchors._hist`: half-open bins, the
    last closed), or -1 outside: ``searchsorted(edges, v, "right") - 1``, from a guess for even edges over [0, 1]
    (the positive-IoU histogram's) corrected against the edges themselves, so exact for any sorted edges (no
    binary search: its branches are unpredictable, one IoU after another; no division)."""
    vd = np.float64(v)
    n = len(edges)
    if not (vd >= edges[0] and vd <= edges[n - 1]):
        return -1
    if vd == edges[n - 1]:
        return n - 2
    b = min(max(int(vd * (n - 1)), 0), n - 2)
    while b > 0 and edges[b] > vd:
        b -= 1
    while b < n - 2 and edges[b + 1] <= vd:
        b += 1
    return b


# ----------------------------------------------------------------------------------------------
# 1. enumeration
# ----------------------------------------------------------------------------------------------


@_jit
def enumerate_rects(boxes, box_img, t, gi, gf, sh_i, sh_f, sh_ord, alo_sorted, delta, slack):
    """Rectangles of every box's (box, shape) pairs that can reach threshold ``t`` (float32).

    Returns ``rects`` int64 (R, 6): box, shape, first row, rows, first column, columns (box-major); and
    ``start`` (N + 1,): box ``m``'s rectangles are ``rects[start[m]:start[m + 1]]``.
    """
    n = boxes.shape[0]
    out = np.empty((max(16, 4 * n), 6), np.int64)
    start = np.empty(n + 1, np.int64)
    r = 0
    tf = np.float64(t)
    for m in range(n):
        start[m] = r
        im = box_img[m]
        gx1, gy1 = np.float64(boxes[m, 0]), np.float64(boxes[m, 1])
        gx2, gy2 = np.float64(boxes[m, 2]), np.float64(boxes[m, 3])
        q0, q1 = _shape_span(gx1, gy1, gx2, gy2, tf, alo_sorted, delta)
        out = _reserve(out, r, q1 - q0)
        for q in range(q0, q1):
            s = sh_ord[q]
            lvl = sh_i[s, 0]
            ilo, ihi, jlo, jhi = _shape_bounds(gx1, gy1, gx2, gy2, tf, s, lvl, im, gi, gf, sh_f, slack)
            if ihi < ilo:
                continue
            out[r, 0], out[r, 1], out[r, 2] = m, s, ilo
            out[r, 3], out[r, 4], out[r, 5] = ihi - ilo + 1, jlo, jhi - jlo + 1
            r += 1
    start[n] = r
    return out[:r], start


# ----------------------------------------------------------------------------------------------
# 3. labels
# ----------------------------------------------------------------------------------------------


@_jit
def _nearest_bound(m, boxes, im, gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f):
    """A lower bound of box ``m``'s best IoU: the IoU of its nearest anchor of every shape (max; -1 if none)."""
    gx1, gy1, gx2, gy2 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
    area_g = (gx2 - gx1) * (gy2 - gy1)
    cx = (np.float64(gx1) + np.float64(gx2)) / 2
    cy = (np.float64(gy1) + np.float64(gy2)) / 2
    u = size_id[im]
    best = np.float32(-1)
    for s in range(sh_i.shape[0]):
        lvl = sh_i[s, 0]
        fj = np.rint((cx - sh_f[s, 0] - sh_f[s, 2] / 2) / gf[im, lvl, 0])
        fi = np.rint((cy - sh_f[s, 1] - sh_f[s, 3] / 2) / gf[im, lvl, 1])
        if not (np.isfinite(fj) and np.isfinite(fi)):
            continue
        j = int(min(max(fj, 0.0), float(gi[im, lvl, 1] - 1)))
        i = int(min(max(fi, 0.0), float(gi[im, lvl, 0] - 1)))
        yk, xk = ybase[u, s] + i, xbase[u, s] + j
        v = _iou(gx1, gy1, gx2, gy2, area_g, xtab[xk, 0], ytab[yk, 0], xtab[xk, 1], ytab[yk, 1])
        if v > best:
            best = v
    return best


@_jit
def _walk(m, t, target, boxes, im, geo, ties):
    """Box ``m``'s anchors in its rectangles at threshold ``t`` (IoU on the fly) whose IoU equals ``target`` put in
    ``ties`` (anchor index, packed shape / row / column): ``(ties, count, target)``; with ``target < 0`` the ones
    at the maximum IoU (the running maximum's ties, in the same order): ``(ties, count, max IoU)``."""
    gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f, sh_ord, alo_sorted, delta, slack = geo
    gx1, gy1, gx2, gy2 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
    area_g = (gx2 - gx1) * (gy2 - gy1)
    g0, g1, g2, g3 = np.float64(gx1), np.float64(gy1), np.float64(gx2), np.float64(gy2)
    u = size_id[im]
    tf = np.float64(t)
    best = np.float32(-1)
    n = 0
    q0, q1 = _shape_span(g0, g1, g2, g3, tf, alo_sorted, delta)
    for q in range(q0, q1):
        s = sh_ord[q]
        lvl, k = sh_i[s, 0], sh_i[s, 1]
        gw, per = gi[im, lvl, 1], gi[im, lvl, 3]
        ilo, ihi, jlo, jhi = _shape_bounds(g0, g1, g2, g3, tf, s, lvl, im, gi, gf, sh_f, slack)
        if ihi >= ilo:
            ties = _reserve(ties, n, (ihi - ilo + 1) * (jhi - jlo + 1))
        for i in range(ilo, ihi + 1):
            yk = ybase[u, s] + i
            ay1, ay2 = ytab[yk, 0], ytab[yk, 1]
            for j in range(jlo, jhi + 1):
                xk = xbase[u, s] + j
                v = _iou(gx1, gy1, gx2, gy2, area_g, xtab[xk, 0], ay1, xtab[xk, 1], ay2)
                if target < 0:
                    if v > best:
                        best, n = v, 0
                    if v == best:
                        ties[n, 0] = gi[im, lvl, 2] + (i * gw + j) * per + k
                        ties[n, 1] = _pack(s, i, j)
                        n += 1
                elif v == target:
                    ties[n, 0] = gi[im, lvl, 2] + (i * gw + j) * per + k
                    ties[n, 1] = _pack(s, i, j)
                    n += 1
    return ties, n, best if target < 0 else target


@_jit
def _own_best(a_x1, a_y1, a_x2, a_y2, boxes, b0, b1):
    """(IoU, box) of an anchor's best box among boxes ``b0 .. b1 - 1`` (first on ties, as ``torch.max``)."""
    bv, bm = np.float32(-1), b0
    for m in range(b0, b1):
        gx1, gy1, gx2, gy2 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
        v = _iou(gx1, gy1, gx2, gy2, (gx2 - gx1) * (gy2 - gy1), a_x1, a_y1, a_x2, a_y2)
        if v > bv:
            bv, bm = v, m
    return bv, bm


@_step
def _image_ious(im, b0, b1, boxes, xtab, ytab, rect, state, box_max, neg, per_shape, cw, caw):
    """The IoU of every anchor of the image's rectangles (torchvision's float32 ``box_iou`` operations), folded at
    once into each anchor's best IoU and first best box among the pairs reaching ``neg`` (no buffer): each
    rectangle's maximum into ``rmax``, each box's into ``box_max``, every anchor labelled (flag 0 -> 1) appended to
    the touched list ``tl`` with its packed shape / row / column in ``tp``. Returns how many it labelled."""
    rects, box_rect, r0, rmax = rect
    flag, best, bx, tl, tp = state
    sbase, sgw, syb, sxb = per_shape
    zero = np.float32(0)
    nt = 0
    for m in range(b0, b1):
        gx1, gy1, gx2, gy2 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
        area_g = (gx2 - gx1) * (gy2 - gy1)
        gm = np.float32(-1)
        for r in range(box_rect[m], box_rect[m + 1]):
            s, ilo, ni, jlo, nj = rects[r, 1], rects[r, 2], rects[r, 3], rects[r, 4], rects[r, 5]
            xb, yb, gw = sxb[s] + jlo, syb[s] + ilo, sgw[s]
            for dj in range(nj):  # the columns' intersection widths and widths, once per rectangle
                ax1, ax2 = xtab[xb + dj, 0], xtab[xb + dj, 1]
                iw = _nmin(gx2, ax2) - _nmax(gx1, ax1)
                if iw < zero:
                    iw = zero
                cw[dj] = iw
                caw[dj] = ax2 - ax1
            rm = np.float32(-1)
            x = sbase[s] + ilo * gw + jlo
            for di in range(ni):
                ay1, ay2 = ytab[yb + di, 0], ytab[yb + di, 1]
                ih = _nmin(gy2, ay2) - _nmax(gy1, ay1)
                if ih < zero:
                    ih = zero
                hy = ay2 - ay1
                for dj in range(nj):
                    inter = cw[dj] * ih
                    v = inter / ((area_g + caw[dj] * hy) - inter)
                    if v > rm:
                        rm = v
                    if v >= neg:
                        xa = x + dj
                        if flag[xa] == 0:
                            flag[xa] = 1
                            best[xa] = v
                            bx[xa] = m
                            tl[nt] = xa
                            tp[nt] = _pack(s, ilo + di, jlo + dj)
                            nt += 1
                        elif v > best[xa]:
                            best[xa] = v
                            bx[xa] = m
                x += gw
            rmax[r - r0] = rm
            if rm > gm:
                gm = rm
        box_max[m] = gm
    return nt


@_step
def _low_box_maxima(im, b0, b1, boxes, geo, box_max, neg):
    """Boxes below ``neg``: a lower bound of their maximum (the nearest anchors' IoU), stored negated in
    ``box_max`` for :func:`_box_matches` to walk the box's rectangles at it once (maximum and its ties).

    Returns True where a box touches no anchor (or is not finite): the image goes to the dense engine's
    degenerate rule."""
    zero = np.float32(0)
    gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f = (
        geo[0],
        geo[1],
        geo[2],
        geo[3],
        geo[4],
        geo[5],
        geo[6],
        geo[7],
        geo[8],
    )
    for m in range(b0, b1):
        if box_max[m] >= neg and box_max[m] > zero:  # (a maximum of 0 means every anchor ties it, neg or not)
            continue
        lb = _nearest_bound(m, boxes, im, gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f)
        if box_max[m] > lb:
            lb = box_max[m]
        if not lb > zero:
            return True
        box_max[m] = -lb
    return False


@_step
def _clear_image(b0, b1, flag, tl, nt, box_max):
    """Undo :func:`_image_ious` for an image handed to the dense engine: flags and box maxima back to zero."""
    for q in range(nt):
        flag[tl[q]] = 0
    for m in range(b0, b1):
        box_max[m] = np.float32(0)


@_step
def _box_ties(im, m, gm, boxes, geo, rect, neg, ties):
    """Box ``m``'s anchors at its maximum ``gm`` as (anchor, packed shape-row-column) rows of ``ties``: from its
    rectangles whose maximum is ``gm`` (their IoUs computed again, the same operations) where ``gm`` reaches
    ``neg``, else walked again. Returns ``(ties, count)``."""
    if not gm >= neg:  # the ties are the anchors at or above the maximum itself
        ties, nti, _ = _walk(m, gm, gm, boxes, im, geo, ties)
        return ties, nti
    gi, u, ybase, xbase, ytab, xtab, sh_i = geo[0], geo[2][im], geo[3], geo[4], geo[5], geo[6], geo[7]
    rects, box_rect, r0, rmax = rect
    gx1, gy1, gx2, gy2 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
    area_g = (gx2 - gx1) * (gy2 - gy1)
    nti = 0
    for r in range(box_rect[m], box_rect[m + 1]):
        if rmax[r - r0] != gm:
            continue
        s, ilo, ni, jlo, nj = rects[r, 1], rects[r, 2], rects[r, 3], rects[r, 4], rects[r, 5]
        lvl = sh_i[s, 0]
        gw, per = gi[im, lvl, 1], gi[im, lvl, 3]
        a0 = gi[im, lvl, 2] + (ilo * gw + jlo) * per + sh_i[s, 1]
        yb, xb = ybase[u, s] + ilo, xbase[u, s] + jlo
        ties = _reserve(ties, nti, ni * nj)
        for di in range(ni):
            ay1, ay2 = ytab[yb + di, 0], ytab[yb + di, 1]
            for dj in range(nj):
                if _iou(gx1, gy1, gx2, gy2, area_g, xtab[xb + dj, 0], ay1, xtab[xb + dj, 1], ay2) == gm:
                    ties[nti, 0] = a0 + (di * gw + dj) * per
                    ties[nti, 1] = _pack(s, ilo + di, jlo + dj)
                    nti += 1
    return ties, nti


@_step
def _force(im, m, gm, b0, b1, sbase, boxes, geo, state, lq, neg, ties, nti, extra, nx):
    """The low-quality / forced matches of box ``m`` over its ``nti`` tying anchors; the ones outside its
    rectangles listed in ``extra``. Returns ``(extra, nx, newly touched anchors)``."""
    mask20 = (1 << 20) - 1
    gi, ybase, xbase, ytab, xtab, sh_i = geo[0], geo[3], geo[4], geo[5], geo[6], geo[7]
    flag, best, bx = state[0], state[1], state[2]
    u = geo[2][im]
    touched = 0
    extra = _reserve(extra, nx, nti)
    for q in range(nti):
        p = ties[q, 1]
        s, i, j = p >> 40, (p >> 20) & mask20, p & mask20
        x = sbase[s] + i * gi[im, sh_i[s, 0], 1] + j
        f = flag[x]
        if lq == LQ_TORCHVISION:  # the anchor's own best box (below neg with every box: among all of them)
            if f == 0:
                yk, xk = ybase[u, s] + i, xbase[u, s] + j
                best[x], bx[x] = _own_best(xtab[xk, 0], ytab[yk, 0], xtab[xk, 1], ytab[yk, 1], boxes, b0, b1)
            elif f == 1:
                flag[x] = 3
        else:  # mmdet / ssd: this box and its highest IoU; later boxes override
            best[x], bx[x] = gm, m
            if f != 0 and f != 5:
                flag[x] = 3 if gm >= neg else 5  # below neg: outside this box's rectangles
        if flag[x] == 0 or (flag[x] == 5 and f != 5):
            if f == 0:
                touched += 1
            flag[x] = 5
            extra[nx, 0], extra[nx, 1] = x, p
            nx += 1
    return extra, nx, touched


@_step
def _box_matches(im, b0, b1, sbase, boxes, geo, rect, state, neg, lq, box_max, box_i, ties, extra):
    """Each box's tying anchors (box order): its first best anchor, then the low-quality / forced matches.

    Returns ``(ties, extra, listed anchors, newly touched anchors)``."""
    sh_i = geo[7]
    nx, touched = 0, 0
    for m in range(b0, b1):
        gm = box_max[m]
        if gm < 0:  # a box below neg (:func:`_low_box_maxima`): walked once at the bound, its maximum and ties
            ties, nti, gm = _walk(m, -gm, np.float32(-1), boxes, im, geo, ties)
            box_max[m] = gm
            if gm >= neg:  # (its maximum was 0 and neg at most 0: ties from its rectangles, as any box's)
                ties, nti = _box_ties(im, m, gm, boxes, geo, rect, neg, ties)
        else:
            ties, nti = _box_ties(im, m, gm, boxes, geo, rect, neg, ties)
        fa, fp = ties[0, 0], ties[0, 1]
        for q in range(1, nti):
            if ties[q, 0] < fa:
                fa, fp = ties[q, 0], ties[q, 1]
        box_i[m, BOX_BEST] = fa
        box_i[m, BOX_LEVEL] = sh_i[fp >> 40, 0]
        if lq == LQ_NONE:
            continue
        if lq == LQ_SSD:  # only the box's first best anchor
            ties[0, 0], ties[0, 1] = fa, fp
            nti = 1
        extra, nx, t = _force(im, m, gm, b0, b1, sbase, boxes, geo, state, lq, neg, ties, nti, extra, nx)
        touched += t
    return ties, extra, nx, touched


@_step
def _record(rec_i, rec_f, npos, im, a, lvl, m, v, ax1, ay1):
    """Append a positive to the records at row ``npos`` (room reserved by the caller); returns ``npos + 1``."""
    rec_i[npos, 0], rec_i[npos, 1], rec_i[npos, 2], rec_i[npos, 3] = im, a, lvl, m
    rec_f[npos, 0], rec_f[npos, 1], rec_f[npos, 2] = v, ax1, ay1
    return npos + 1


@_step
def _reserve_recs(recs, records, sampled, more):
    """Room for ``more`` rows in the records (with ``records``) and the sample list (for a ``sampled`` image)."""
    rec_i, rec_f, npos, smp, nsmp = recs
    if records:
        rec_i = _reserve(rec_i, npos, more)
        rec_f = _reserve(rec_f, npos, more)
    if sampled:
        smp = _reserve(smp, nsmp, more)
    return rec_i, rec_f, npos, smp, nsmp


@_step
def _positive_hist(v, pos_edges, pos_t, pos_hist, counters):
    """A positive's IoU into the positive-IoU histogram and the low-quality counter."""
    b = _pos_bin(v, pos_edges)
    if b >= 0:
        pos_hist[b] += 1
    if v < pos_t:
        counters[CNT_LOW_QUALITY] += 1


@_step
def _spatial_add(cy, cx, spatial, counters):
    """A positive into the spatial histogram at bin (``cy``, ``cx``), or the outside counter."""
    if cx >= 0 and cy >= 0:
        spatial[cy, cx] += 1
    else:
        counters[CNT_OUTSIDE] += 1


@_step
def _ignored(box_i, b0, m, v):
    """An ignored anchor counted for its best box ``m`` (IoU 0 with every box: the image's first box ``b0``)."""
    box_i[b0 if v == np.float32(0) else m, BOX_IGN] += 1


@_step
def _sample(smp, nsmp, im, x, sampled):
    """(image, state index) appended to the sample list when the image is ``sampled`` (room reserved by the caller);
    returns the list's length."""
    if sampled:
        smp[nsmp, 0], smp[nsmp, 1] = im, x
        return nsmp + 1
    return nsmp


@_step
def _bin_rect(boxes, m, xtab, ytab, xb, yb, ni, nj, sp, colb, rowb):
    """A rectangle's anchor columns and rows in box ``m``'s frame: spatial bins (``sp`` = lo, hi, scale, bins)."""
    sp_lo, sp_hi, sp_scale, bins = sp
    g0, g1 = np.float64(boxes[m, 0]), np.float64(boxes[m, 1])
    g2, g3 = np.float64(boxes[m, 2]), np.float64(boxes[m, 3])
    for k in range(nj):
        colb[k] = _spatial_bin(xtab[xb + k, 0], g0, g2, sp_lo, sp_hi, sp_scale, bins)
    for k in range(ni):
        rowb[k] = _spatial_bin(ytab[yb + k, 0], g1, g3, sp_lo, sp_hi, sp_scale, bins)


@_step
def _count_boxes(im, b0, b1, sbase, boxes, geo, rect, state, pos, neg, box_i, stats, records, recs, colb, rowb):
    """The labels counted in each box's rectangles (anchors whose box it is), their state reset.

    Returns ``(fg, ignored, recs)``. The tuples are unpacked once here: a rectangle is too small a unit."""
    gi, u, ybase, xbase, ytab, xtab, sh_i = geo[0], geo[2][im], geo[3], geo[4], geo[5], geo[6], geo[7]
    rects, box_rect, r0, rmax = rect
    flag, best, bx = state[0], state[1], state[2]
    want_stats, box_class, per_class, per_level, pos_edges, pos_t, pos_hist, spatial = stats[:8]
    sp_lo, sp_hi, counters, sampled = stats[8], stats[9], stats[10], stats[11][im]
    sp = (sp_lo, sp_hi, spatial.shape[0] / (sp_hi - sp_lo), spatial.shape[0])
    rec_i, rec_f, npos, smp, nsmp = recs
    fg, ign = 0, 0
    for m in range(b0, b1):
        for r in range(box_rect[m], box_rect[m + 1]):
            if not rmax[r - r0] >= neg:
                continue
            s, ilo, ni, jlo, nj = rects[r, 1], rects[r, 2], rects[r, 3], rects[r, 4], rects[r, 5]
            lvl = sh_i[s, 0]
            gw, per = gi[im, lvl, 1], gi[im, lvl, 3]
            yb, xb = ybase[u, s] + ilo, xbase[u, s] + jlo
            binned, n_r = False, 0
            if records:
                rec_i, rec_f = _reserve(rec_i, npos, ni * nj), _reserve(rec_f, npos, ni * nj)
            if sampled:
                smp = _reserve(smp, nsmp, ni * nj)
            for di in range(ni):
                x = sbase[s] + (ilo + di) * gw + jlo
                for dj in range(nj):
                    f = flag[x]
                    if (f == 1 or f == 3) and bx[x] == m:
                        flag[x] = 0
                        v = best[x]
                        if f == 3 or v >= pos:
                            n_r += 1
                            if records:
                                a = gi[im, lvl, 2] + ((ilo + di) * gw + jlo + dj) * per + sh_i[s, 1]
                                npos = _record(rec_i, rec_f, npos, im, a, lvl, m, v, xtab[xb + dj, 0], ytab[yb + di, 0])
                            if want_stats:
                                _positive_hist(v, pos_edges, pos_t, pos_hist, counters)
                                if not binned:  # the rectangle's columns and rows in the box's frame, once
                                    _bin_rect(boxes, m, xtab, ytab, xb, yb, ni, nj, sp, colb, rowb)
                                    binned = True
                                _spatial_add(rowb[di], colb[dj], spatial, counters)
                        else:
                            ign += 1
                            _ignored(box_i, b0, m, v)
                        nsmp = _sample(smp, nsmp, im, x, sampled)
                    x += 1
            if n_r:
                fg += n_r
                box_i[m, BOX_POS] += n_r
                if want_stats:
                    per_level[lvl] += n_r
    return fg, ign, (rec_i, rec_f, npos, smp, nsmp)


@_step
def _count_touched(im, b0, nt, boxes, geo, state, pos, box_i, stats, recs, per_shape, flat):
    """The labels of the anchors :func:`_image_ious` labelled, counted by walking its touched list once (each
    anchor once; the ones listed in ``extra`` are left to :func:`_count_extra`), their state reset; no records.
    The spatial histogram goes to ``flat`` (row-major, then the outside count), folded in by :func:`label_images`.

    Returns ``(fg, ignored, recs)``."""
    mask20 = (1 << 20) - 1
    ytab, xtab, sh_i = geo[5], geo[6], geo[7]
    flag, best, bx, tl, tp = state
    syb, sxb = per_shape[2], per_shape[3]
    want_stats, box_class, per_class, per_level, pos_edges, pos_t, pos_hist, spatial = stats[:8]
    sp_lo, sp_hi, counters, sampled = stats[8], stats[9], stats[10], stats[11][im]
    bins, bw, nsp = spatial.shape[0], spatial.shape[1], spatial.size
    sp_scale = bins / (sp_hi - sp_lo)
    rec_i, rec_f, npos, smp, nsmp = _reserve_recs(recs, False, sampled, nt)
    fg, ign = 0, 0
    for q in range(nt):
        x = tl[q]
        f = flag[x]
        if f == 5:
            continue
        flag[x] = 0
        v, m = best[x], bx[x]
        if f == 3 or v >= pos:
            box_i[m, BOX_POS] += 1
            tl[fg], tp[fg] = x, tp[q]  # the positives, compacted in place for the second loop
            fg += 1
        else:
            ign += 1
            _ignored(box_i, b0, m, v)
        nsmp = _sample(smp, nsmp, im, x, sampled)
    if want_stats:  # a loop of its own: no label branch, the divisions of one positive overlap the next's
        low = 0
        for q in range(fg):
            x, p = tl[q], tp[q]
            v, m = best[x], bx[x]
            s, i, j = p >> 40, (p >> 20) & mask20, p & mask20
            per_level[sh_i[s, 0]] += 1
            b = _pos_bin(v, pos_edges)
            pos_hist[b] += b >= 0  # (no branch: outside the edges adds 0 to the last bin)
            low += v < pos_t
            g0, g2 = np.float64(boxes[m, 0]), np.float64(boxes[m, 2])
            g1, g3 = np.float64(boxes[m, 1]), np.float64(boxes[m, 3])
            cx = _spatial_bin(xtab[sxb[s] + j, 0], g0, g2, sp_lo, sp_hi, sp_scale, bins)
            cy = _spatial_bin(ytab[syb[s] + i, 0], g1, g3, sp_lo, sp_hi, sp_scale, bins)
            flat[cy * bw + cx if cx >= 0 and cy >= 0 else nsp] += 1  # (no branch: the last slot is outside)
        counters[CNT_LOW_QUALITY] += low
    return fg, ign, (rec_i, rec_f, npos, smp, nsmp)


@_step
def _count_extra(im, extra, nx, boxes, geo, state, box_i, stats, records, recs):
    """The labels of the anchors listed in ``extra`` (forced positives outside their box's rectangles), their
    state reset. Returns ``(fg, recs)``."""
    mask20 = (1 << 20) - 1
    gi, ybase, xbase, ytab, xtab, sh_i = geo[0], geo[3], geo[4], geo[5], geo[6], geo[7]
    flag, best, bx = state[0], state[1], state[2]
    want_stats, per_level, sp_lo, sp_hi = stats[0], stats[3], stats[8], stats[9]
    bins = stats[7].shape[0]
    sp_scale = bins / (sp_hi - sp_lo)
    u = geo[2][im]
    sampled = stats[11][im]
    rec_i, rec_f, npos, smp, nsmp = _reserve_recs(recs, records, sampled, nx)
    pos_edges, pos_t, pos_hist, spatial, counters = stats[4], stats[5], stats[6], stats[7], stats[10]
    for q in range(nx):
        x, p = extra[q, 0], extra[q, 1]
        flag[x] = 0
        v, m = best[x], bx[x]
        s, i, j = p >> 40, (p >> 20) & mask20, p & mask20
        lvl = sh_i[s, 0]
        ax1, ay1 = xtab[xbase[u, s] + j, 0], ytab[ybase[u, s] + i, 0]
        box_i[m, BOX_POS] += 1
        if records:
            gw, per = gi[im, lvl, 1], gi[im, lvl, 3]
            npos = _record(
                rec_i, rec_f, npos, im, gi[im, lvl, 2] + (i * gw + j) * per + sh_i[s, 1], lvl, m, v, ax1, ay1
            )
        if want_stats:
            per_level[lvl] += 1
            _positive_hist(v, pos_edges, pos_t, pos_hist, counters)
            cx = _spatial_bin(ax1, np.float64(boxes[m, 0]), np.float64(boxes[m, 2]), sp_lo, sp_hi, sp_scale, bins)
            cy = _spatial_bin(ay1, np.float64(boxes[m, 1]), np.float64(boxes[m, 3]), sp_lo, sp_hi, sp_scale, bins)
            _spatial_add(cy, cx, spatial, counters)
        if sampled:
            smp[nsmp, 0], smp[nsmp, 1] = im, x
            nsmp += 1
    return nx, (rec_i, rec_f, npos, smp, nsmp)


@_step
def _shape_bases(im, gi, u, ybase, xbase, sh_i, per_shape):
    """Per shape of image ``im``: its first state index (state index of (shape, row, column): ``sbase[shape] + row *
    grid width + column``), grid width and first row / column in the axis tables."""
    sbase, sgw, syb, sxb = per_shape
    acc = 0
    for s in range(sh_i.shape[0]):
        sbase[s], sgw[s], syb[s], sxb[s] = acc, gi[im, sh_i[s, 0], 1], ybase[u, s], xbase[u, s]
        acc += gi[im, sh_i[s, 0], 0] * gi[im, sh_i[s, 0], 1]


# long: a 17-line docstring for its grouped tuple arguments; the body is one loop over the images
@_jit
def label_images(i0, i1, boxes, img_start, n_anch, geo, rects, pos, neg, lq, state, out, stats, records, lists):
    """Label images ``i0 .. i1 - 1`` (see the module docstring) and fold them into the outputs.

    ``geo`` is the geometry ``(gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f, sh_ord, alo_sorted, delta,
    slack)``. ``rects`` = ``(rects, box_rect)``: the rectangles at ``neg`` of :func:`enumerate_rects` (box ``m``'s
    are ``box_rect[m] .. box_rect[m + 1] - 1``). ``state`` = ``(flag, best, bx, tl, tp)``: per-anchor state of one
    image, indexed shape-major (shape, row, column: a rectangle's row is contiguous); ``flag`` (uint8, zero on entry
    and exit: 1 labelled by its IoU, 3 also a low-quality / forced positive counted in its box's rectangle, 5 such a
    positive outside its box's rectangles, listed in ``extra``); ``tl`` / ``tp`` the touched list (each as long as
    ``flag``). ``out`` = ``(box_max, box_i, img_i)`` (:data:`BOX_BEST` ..., :data:`IMG_FG` ...). ``stats`` =
    ``(want_stats, box_class, per_class, per_level, pos_edges, pos_t, pos_hist, spatial, sp_lo, sp_hi, counters,
    in_sample)``: with ``want_stats`` the class, level, positive-IoU and spatial histograms and ``counters``; for
    images with ``in_sample`` every positive or ignored (image, shape-major index) appended to ``smp``. ``lists`` =
    ``(ties, extra, rec_i, rec_f, npos, smp, nsmp)``: growable (rows, k) lists and their lengths; with ``records``
    each positive appended to ``rec_i`` (image, anchor, level, box) / ``rec_f`` (IoU, anchor x1, y1), box by box
    (without, the labels are counted from the touched list). Returns ``lists``, possibly grown.
    """
    ties, extra, rec_i, rec_f, npos, smp, nsmp = lists
    recs = (rec_i, rec_f, npos, smp, nsmp)
    box_max, box_i, img_i = out
    gi, u_of, ybase, xbase, sh_i = geo[0], geo[2], geo[3], geo[4], geo[7]
    rect_arr, box_rect = rects
    r0 = box_rect[img_start[i0]]
    rect = (rect_arr, box_rect, r0, np.empty(box_rect[img_start[i1]] - r0, np.float32))
    S = sh_i.shape[0]
    per_shape = (np.empty(S, np.int64), np.empty(S, np.int64), np.empty(S, np.int64), np.empty(S, np.int64))
    sbase, sgw, syb, sxb = per_shape
    wmax, hmax = 1, 1
    for r in range(r0, box_rect[img_start[i1]]):
        hmax, wmax = max(hmax, rect_arr[r, 3]), max(wmax, rect_arr[r, 5])
    colb, rowb = np.empty(wmax, np.int64), np.empty(hmax, np.int64)
    cw, caw = np.empty(wmax, np.float32), np.empty(wmax, np.float32)
    flat = np.zeros(stats[7].size + 1, np.int64)  # the spatial histogram of :func:`_count_touched`, then outside
    for im in range(i0, i1):
        b0, b1 = img_start[im], img_start[im + 1]
        if b0 == b1:
            continue
        _shape_bases(im, gi, u_of[im], ybase, xbase, sh_i, per_shape)
        touched = _image_ious(im, b0, b1, boxes, geo[6], geo[5], rect, state, box_max, neg, per_shape, cw, caw)
        if _low_box_maxima(im, b0, b1, boxes, geo, box_max, neg):
            _clear_image(b0, b1, state[0], state[3], touched, box_max)
            img_i[im, IMG_FALLBACK] = 1
            continue
        ties, extra, nx, t = _box_matches(
            im, b0, b1, sbase, boxes, geo, rect, state, neg, lq, box_max, box_i, ties, extra
        )
        if records:
            fg, ign, recs = _count_boxes(
                im, b0, b1, sbase, boxes, geo, rect, state, pos, neg, box_i, stats, records, recs, colb, rowb
            )
        else:
            fg, ign, recs = _count_touched(im, b0, touched, boxes, geo, state, pos, box_i, stats, recs, per_shape, flat)
        fx, recs = _count_extra(im, extra, nx, boxes, geo, state, box_i, stats, records, recs)
        if neg <= np.float32(0):  # an anchor outside every rectangle has IoU 0 >= neg with every box: ignored
            ign += n_anch[im] - touched - t
            box_i[b0, BOX_IGN] += n_anch[im] - touched - t
        img_i[im, IMG_FG] = fg + fx
        img_i[im, IMG_IGN] = ign
        if stats[0]:  # per class from the boxes' positives (final once the image is counted)
            for m in range(b0, b1):
                stats[2][stats[1][m]] += box_i[m, BOX_POS]
    spatial = stats[7]
    for cy in range(spatial.shape[0]):
        for cx in range(spatial.shape[1]):
            spatial[cy, cx] += flat[cy * spatial.shape[1] + cx]
    stats[10][CNT_OUTSIDE] += flat[spatial.size]
    rec_i, rec_f, npos, smp, nsmp = recs
    return ties, extra, rec_i, rec_f, npos, smp, nsmp


# ----------------------------------------------------------------------------------------------
# 4. the sampled negative-IoU histogram
# ----------------------------------------------------------------------------------------------


@_step
def _box_nonzero(m, im, boxes, sbase, gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f, slack, nb, cols):
    """Box ``m``'s IoU with every anchor of its image it reaches (>= the smallest normal float32) folded into the
    anchors' best IoU ``nb`` (state index): per shape its columns' intersection widths and widths once into
    ``cols``, then each row's IoUs in a loop without branches (SIMD: packed multiplies and divisions; each
    element's operations and their order those of :func:`_iou`) into the row buffer ``rv``, then ``nb`` from it."""
    tiny = np.finfo(np.float32).tiny
    zero = np.float32(0)
    cw, caw, rv = cols
    u = size_id[im]
    gx1, gy1, gx2, gy2 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
    area_g = (gx2 - gx1) * (gy2 - gy1)
    g0, g1, g2, g3 = np.float64(gx1), np.float64(gy1), np.float64(gx2), np.float64(gy2)
    for s in range(sh_i.shape[0]):
        lvl = sh_i[s, 0]
        gw = gi[im, lvl, 1]
        ilo, ihi, jlo, jhi = _shape_bounds(g0, g1, g2, g3, np.float64(tiny), s, lvl, im, gi, gf, sh_f, slack)
        nj = jhi - jlo + 1
        xb = xbase[u, s] + jlo
        for dj in range(nj):
            ax1, ax2 = xtab[xb + dj, 0], xtab[xb + dj, 1]
            iw = _nmin(gx2, ax2) - _nmax(gx1, ax1)
            cw[dj] = iw if not iw < zero else zero
            caw[dj] = ax2 - ax1
        for i in range(ilo, ihi + 1):
            yk = ybase[u, s] + i
            ay1, ay2 = ytab[yk, 0], ytab[yk, 1]
            ih = _nmin(gy2, ay2) - _nmax(gy1, ay1)
            if ih < zero:
                ih = zero
            hy = ay2 - ay1
            x = sbase[s] + i * gw + jlo
            for dj in range(nj):
                inter = cw[dj] * ih
                rv[dj] = inter / ((area_g + caw[dj] * hy) - inter)
            for dj in range(nj):
                v = rv[dj]
                if v >= tiny and v > nb[x + dj]:
                    nb[x + dj] = v


@_step
def _image_negatives(nb, A, lo, edges, counts):
    """The image's negatives (``nb`` > 0, positives and ignored set to -1) with a best IoU below ``lo`` into the
    histogram ``counts`` over ``edges``; returns how many."""
    nbins = len(edges) - 1
    c = 0
    for x in range(A):
        v = nb[x]
        if v > 0 and v < lo:
            c += 1
            b = _count_le(edges, v) - 1
            if 0 <= b < nbins:
                counts[b] += 1
    return c


@_jit
def negative_histogram(
    images,
    boxes,
    img_start,
    n_anch,
    gi,
    gf,
    size_id,
    ybase,
    xbase,
    ytab,
    xtab,
    sh_i,
    sh_f,
    slack,
    smp,
    nsmp,
    lo,
    edges,
    counts,
    nonzero,
):
    """Histogram of the negative anchors' best IoU over float32 ``edges`` (into ``counts``) for ``images``
    (ascending); ``nonzero[k]`` gets the number of image ``images[k]``'s negatives with a best IoU in (0, lo).

    Every anchor with an IoU >= the smallest normal float32 with some box of the image is enumerated (a
    subnormal IoU counts as 0); the positive and ignored anchors (``smp[:nsmp]``: image, shape-major index,
    ascending by image) are not negatives.
    """
    S = sh_i.shape[0]
    per_shape = (np.empty(S, np.int64), np.empty(S, np.int64), np.empty(S, np.int64), np.empty(S, np.int64))
    sbase = per_shape[0]
    amax = 1
    for im in images:
        amax = max(amax, n_anch[im])
    nb = np.zeros(amax, np.float32)
    wmax = 1
    for im in images:
        for lvl in range(gi.shape[1]):
            wmax = max(wmax, gi[im, lvl, 1])
    cols = (np.empty(wmax, np.float32), np.empty(wmax, np.float32), np.empty(wmax, np.float32))  # _box_nonzero's
    q = 0
    for k in range(len(images)):
        im = images[k]
        A = n_anch[im]
        nb[:A] = 0
        _shape_bases(im, gi, size_id[im], ybase, xbase, sh_i, per_shape)
        for m in range(img_start[im], img_start[im + 1]):
            _box_nonzero(m, im, boxes, sbase, gi, gf, size_id, ybase, xbase, ytab, xtab, sh_i, sh_f, slack, nb, cols)
        while q < nsmp and smp[q, 0] < im:
            q += 1
        while q < nsmp and smp[q, 0] == im:
            nb[smp[q, 1]] = -1
            q += 1
        nonzero[k] = _image_negatives(nb, A, lo, edges, counts)
