"""The output floor of ``benchmarks/anchor_floor.py``: the least work the statistics' outputs need beyond the IoUs.

Given the floor's own pairs of a chunk (the pairs at or above ``neg_iou``, the low-quality rule's ties and their
anchors' pairs with every box of their image), and with the per-anchor and per-box tables they determine laid out
beforehand (untimed: each anchor's best IoU and first best box, its level and corner), three compiled loops (numba,
no fast-math, the kernel's options) produce exactly the quantities the statistics report, each timed on its own:

1. **labels**: each labelled anchor once (IoU >= ``neg_iou`` with some box, or forced by the low-quality rule): read
   its best IoU, classify positive / ignored, count per image and per box, list the positives;
2. **per-positive statistics**: each positive's level, its positive-IoU bin, its spatial bin (Fig. 14: the pass's own
   bin functions, :func:`imbalance_cli.anchors.kernel._pos_bin` and ``_spatial_bin``), its class's count, and the
   low-quality count (positives below ``pos_iou``);
3. **ties and low-quality matches**: each box's maximum over its pairs and the anchors at it (its first best anchor),
   then torchvision's rule: each tying anchor becomes a positive of its own best box.

Loop 3 runs first (it changes labels), then 1, then 2. Units (labelled anchors, positives, boxes, ties) are counted
by these loops from the floor's pairs, not read from the pass.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from imbalance_cli.anchors.kernel import _pos_bin, _spatial_bin

F32 = np.float32
ROLES = {"neg": 0, "tie": 1, "own": 2}  # the pairs the output floor reads (the negative histogram's: none)


def _ties_forced(start, pv, pa, flag, box_best, tbuf):
    """(3) Per box: the maximum of its pairs' IoUs ``pv`` and the anchors ``pa`` at it (its first best anchor:
    the smallest index), each of them flagged a forced positive (torchvision: of its own best box)."""
    nties = 0
    for m in range(len(start) - 1):
        gm, n = F32(-1), 0
        for e in range(start[m], start[m + 1]):
            v = pv[e]
            if v > gm:
                gm, n = v, 0
            if v == gm:
                tbuf[n] = pa[e]
                n += 1
        fa = tbuf[0] if n else -1
        for q in range(n):
            fa = min(fa, tbuf[q])
            flag[tbuf[q]] = 1
        box_best[m] = fa
        nties += n
    return nties


def _labels(best, bx, img, flag, pos, neg, img_fg, img_ign, box_pos, box_ign, plist):
    """(1) Each labelled anchor once: positive (IoU >= ``pos`` or forced) or ignored (>= ``neg``), counted per
    image and per box, the positives listed; the flags reset. Returns (positives, labelled anchors)."""
    npos, nlab = 0, 0
    for k in range(len(best)):
        v, m = best[k], bx[k]
        if flag[k] == 1 or v >= pos:
            box_pos[m] += 1
            img_fg[img[k]] += 1
            plist[npos] = k
            npos += 1
            nlab += 1
        elif v >= neg:
            box_ign[m] += 1
            img_ign[img[k]] += 1
            nlab += 1
        flag[k] = 0
    return npos, nlab


def _positives(plist, npos, best, bx, level, corner, boxes, cls, hists, pos_edges, pos_t, sp_lo, sp_hi):
    """(2) Each positive: its level, positive-IoU bin, spatial bin (flat, the last slot outside), class; returns
    the low-quality count (below ``pos_t``)."""
    per_level, pos_hist, flat, per_class = hists
    bins = int(np.sqrt(flat.size - 1))
    scale = bins / (sp_hi - sp_lo)
    low = 0
    for q in range(npos):
        k = plist[q]
        v, m = best[k], bx[k]
        per_level[level[k]] += 1
        b = _pos_bin(v, pos_edges)
        pos_hist[b] += b >= 0
        low += v < pos_t
        cx = _spatial_bin(corner[k, 0], np.float64(boxes[m, 0]), np.float64(boxes[m, 2]), sp_lo, sp_hi, scale, bins)
        cy = _spatial_bin(corner[k, 1], np.float64(boxes[m, 1]), np.float64(boxes[m, 3]), sp_lo, sp_hi, scale, bins)
        flat[cy * bins + cx if cx >= 0 and cy >= 0 else bins * bins] += 1
        per_class[cls[m]] += 1
    return low


@functools.cache
def kernels():
    """The three compiled loops (made once; numba with the kernel's options: on-disk cache, no fast-math)."""
    from numba import njit

    opts = {"cache": True, "nogil": True, "error_model": "numpy"}
    return tuple(njit(**opts)(f) for f in (_ties_forced, _labels, _positives))


class OutputFloor:
    """Collects a chunk's floor pairs (role ``"neg"``: at or above ``neg_iou``; ``"tie"``: a low box's tying pairs;
    ``"own"``: a tying anchor's pairs with every box of its image), then times the three loops over them."""

    def __init__(self):
        self.parts: list = []
        self.seconds = {"labels": 0.0, "positives": 0.0, "ties": 0.0}
        self.units = {"labelled anchors": 0, "positives": 0, "boxes": 0, "ties": 0}
        kernels()

    def add(self, role: str, anchor_xy, slot, img, box, iou, level) -> None:
        """Queue pairs: anchor corners (n, 4), anchor index within its image, image, box (chunk-local), IoU, level."""
        if role in ROLES:
            self.parts.append((ROLES[role], anchor_xy[:, :2], slot, img, box, iou, level))

    def _tables(self, n_boxes: int):
        """Untimed: the per-anchor table (best IoU, first best box, image, level, corner) and the box-sorted pairs
        (IoU, table index) of the roles ``neg`` and ``tie``."""
        cat = {k: np.concatenate([p[i] for p in self.parts]) for i, k in enumerate("rxsibvl") if i}
        role = np.concatenate([np.full(len(p[2]), p[0], np.int8) for p in self.parts])
        key = cat["i"].astype(np.int64) * (1 << 32) + cat["s"]
        order = np.lexsort((cat["b"], -cat["v"], key))  # per anchor: highest IoU first, then the first box
        uk, first, inv = np.unique(key[order], return_index=True, return_inverse=True)
        at = order[first]
        table = {
            "best": np.ascontiguousarray(cat["v"][at], F32),
            "bx": np.ascontiguousarray(cat["b"][at], np.int64),
            "img": np.ascontiguousarray(cat["i"][at], np.int64),
            "level": np.ascontiguousarray(cat["l"][at], np.int64),
            "corner": np.ascontiguousarray(cat["x"][at], F32),
        }
        slot_of = np.empty(len(key), np.int64)
        slot_of[order] = inv
        sel = np.flatnonzero(role != ROLES["own"])
        bo = sel[np.argsort(cat["b"][sel], kind="stable")]
        start = np.searchsorted(cat["b"][bo], np.arange(n_boxes + 1)).astype(np.int64)
        pairs = (start, np.ascontiguousarray(cat["v"][bo], F32), np.ascontiguousarray(slot_of[bo]))
        return table, pairs

    def run(self, boxes, cls, n_img: int, pos: float, neg: float, hist_args) -> None:
        """Time the three loops over the queued pairs of one chunk (``boxes`` (N, 4) chunk-local, ``cls`` their
        classes; ``hist_args``: positive-IoU edges, spatial bins, spatial range)."""
        if not self.parts:
            return
        ties_forced, labels, positives = kernels()
        table, (start, pv, pa) = self._tables(len(boxes))
        self.parts = []
        pos_edges, bins, (sp_lo, sp_hi) = hist_args
        n = len(table["best"])
        flag, tbuf, box_best = (
            np.zeros(n, np.uint8),
            np.empty(max(int(np.diff(start).max()), 1), np.int64),
            np.zeros(len(boxes), np.int64),
        )
        counts = [np.zeros(k, np.int64) for k in (n_img, n_img, len(boxes), len(boxes))]
        plist = np.empty(n, np.int64)
        hists = (np.zeros(int(table["level"].max(initial=0)) + 1, np.int64), np.zeros(len(pos_edges) - 1, np.int64))
        hists += (np.zeros(bins * bins + 1, np.int64),)
        hists += (np.zeros(int(cls.max(initial=0)) + 1, np.int64),)
        # compiled (or loaded from numba's cache) on the first call: once untimed, over nothing
        ties_forced(start[:1], pv, pa, flag, box_best, tbuf)
        labels(table["best"][:0], table["bx"], table["img"], flag, F32(pos), F32(neg), *counts, plist)
        args = (table["best"], table["bx"], table["level"], table["corner"], boxes, cls, hists, pos_edges)
        positives(plist, 0, *args, F32(pos), sp_lo, sp_hi)
        t0 = time.process_time()
        nties = ties_forced(start, pv, pa, flag, box_best, tbuf)
        t1 = time.process_time()
        npos, nlab = labels(table["best"], table["bx"], table["img"], flag, F32(pos), F32(neg), *counts, plist)
        t2 = time.process_time()
        positives(plist, npos, *args, F32(pos), sp_lo, sp_hi)
        t3 = time.process_time()
        for k, dt in (("ties", t1 - t0), ("labels", t2 - t1), ("positives", t3 - t2)):
            self.seconds[k] += dt
        for k, u in (("labelled anchors", nlab), ("positives", npos), ("boxes", len(boxes)), ("ties", nties)):
            self.units[k] += int(u)
