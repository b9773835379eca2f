"""The anchor pass against its floor: the IoU work the exact statistics cannot avoid, timed on this machine.

    python benchmarks/anchor_floor.py [--kind objects365 --scale 0.1 | --file PATH] [--images N] [--workers W]

1. **The floor.** For every chunk of images, the (box, anchor) pairs the statistics of the default
   ``stats`` (``--anchors retinanet``) cannot do without:

   * every pair with IoU at or above the lowest threshold the preset reports on (``neg_iou``):
     positives, ignored anchors, each box's best IoU and its ties;
   * for each box whose best IoU is below it (the low-quality rule): the pairs at its best IoU
     (its tying anchors), and each tying anchor's pairs with IoU > 0 with every box of its image
     (torchvision matches it to *its own* best box);
   * the sampled negative-IoU histogram (100 images on a CPU): every pair with IoU > 0 there.

   The pairs are found with the engine's enumeration (held equal to the dense engine by the tests),
   laid out as eight contiguous float32 columns, and only then is one fully vectorised float32 IoU
   (torchvision's ``box_iou`` arithmetic, output buffers reused) timed over them, block by block,
   on ``W`` processes at once. The floor is the CPU seconds of that IoU alone: no enumeration, no
   bookkeeping. The **strict floor** adds the least an exact labeller cannot skip: over exactly the
   same pairs (in image, then box order), each pair's IoU and its anchor's best-IoU / first-best-box
   update (an anchor met first in its image takes the pair, later pairs only if higher), compiled
   (numba, no fast-math), in two formulations timed on the same blocks: one fused scalar loop, and
   the block's IoUs into a buffer by a loop without branches (packed SIMD divisions), then the
   updates; the cheaper one is reported (and which), split into the labelling's pairs and the
   negative histogram's. The **output floor** (:mod:`output_floor`) adds, over the same pairs, timed
   compiled loops producing exactly what the statistics report: the labels of each labelled anchor,
   each positive's level / IoU / spatial bins and class, each box's ties and the low-quality matches.
2. **The pass**, in one process with :mod:`imbalance_cli.anchors.phases` on: CPU seconds per
   phase (set-up, enumeration, IoU, labelling, accumulators, histograms, and the inter-process
   transfer: each chunk and each partial result pickled and unpickled as the worker pool does),
   then the wall time of the same pass on ``W`` worker processes.
   The compiled pass's load (once per command: import and numba's cache) is timed in set-up; the
   first run after an install compiles it first, in a separate process, timed apart (a compile
   landing in the pass's own phases would inflate them by about 30 CPU s).
3. The tables: each phase's CPU seconds, its share, and its multiple of the floor and of the strict floor;
   then the pass's phases against the strict floor's and the output floor's parts, and the pass over their sum.

CPU seconds are used because the machine is shared: wall time also counts other processes' turns.
The load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import functools
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

F32 = np.float32
BLOCK = 1 << 18  # pairs per timed IoU block (eight float32 columns: 8 MiB, cache-sized)


def iou_columns(c: np.ndarray, out: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """float32 IoU of pairs given as columns ``c`` (8, n): box x1 y1 x2 y2, anchor x1 y1 x2 y2 (``box_iou``'s
    arithmetic: ``inter / ((area_box + area_anchor) - inter)``), into ``out`` (n,) with scratch ``tmp`` (3, n)."""
    gx1, gy1, gx2, gy2, ax1, ay1, ax2, ay2 = c
    iw, ih, u = tmp
    np.minimum(gx2, ax2, out=iw)
    iw -= np.maximum(gx1, ax1, out=u)
    np.maximum(iw, F32(0), out=iw)
    np.minimum(gy2, ay2, out=ih)
    ih -= np.maximum(gy1, ay1, out=u)
    np.maximum(ih, F32(0), out=ih)
    np.multiply(iw, ih, out=out)  # inter
    np.subtract(gx2, gx1, out=iw)
    np.subtract(gy2, gy1, out=ih)
    np.multiply(iw, ih, out=u)  # area of the box
    np.subtract(ax2, ax1, out=iw)
    np.subtract(ay2, ay1, out=ih)
    iw *= ih  # area of the anchor
    u += iw
    u -= out
    return np.divide(out, u, out=out)


class Timer:
    """CPU seconds of the IoU alone over blocks of pair columns."""

    def __init__(self):
        self.cols = np.empty((8, BLOCK), F32)
        self.out = np.empty(BLOCK, F32)
        self.tmp = np.empty((3, BLOCK), F32)
        self.n = 0
        self.seconds = 0.0
        self.pairs = 0

    def add(self, boxes: np.ndarray, anchors: np.ndarray) -> None:
        """Queue pairs (box corners (n, 4), anchor corners (n, 4)); full blocks are timed."""
        a = 0
        while a < len(boxes):
            k = min(BLOCK - self.n, len(boxes) - a)
            self.cols[:4, self.n : self.n + k] = boxes[a : a + k].T
            self.cols[4:, self.n : self.n + k] = anchors[a : a + k].T
            self.n += k
            a += k
            if self.n == BLOCK:
                self.flush()

    def flush(self) -> None:
        if self.n:
            n = self.n
            c = self.cols[:, :n] if n < BLOCK else self.cols
            t = time.process_time()
            iou_columns(c, self.out[:n], self.tmp[:, :n])
            self.seconds += time.process_time() - t
            self.pairs += n
            self.n = 0


def _iou_best_fused(njit, opts):
    """The strict floor's fused formulation: one scalar loop, each pair's IoU then its anchor's update."""

    @njit(**opts)
    def iou_best(c, n, slot, img, box, best, bx, stamp):
        """Each pair's float32 IoU (``box_iou``'s operations) folded into its anchor's best IoU and first best box:
        an anchor met for the first time in its image (``stamp``) takes the pair, later pairs only if higher."""
        zero = np.float32(0)
        for q in range(n):
            gx1, gy1, gx2, gy2, ax1, ay1, ax2, ay2 = (
                c[0, q],
                c[1, q],
                c[2, q],
                c[3, q],
                c[4, q],
                c[5, q],
                c[6, q],
                c[7, q],
            )
            iw = min(gx2, ax2) - max(gx1, ax1)
            ih = min(gy2, ay2) - max(gy1, ay1)
            inter = max(iw, zero) * max(ih, zero)
            v = inter / (((gx2 - gx1) * (gy2 - gy1) + (ax2 - ax1) * (ay2 - ay1)) - inter)
            a = slot[q]
            if stamp[a] != img[q]:
                stamp[a] = img[q]
                best[a] = v
                bx[a] = box[q]
            elif v > best[a]:
                best[a] = v
                bx[a] = box[q]

    return iou_best


def _iou_best_vectorised(njit, opts):
    """The strict floor's vectorised formulation: the block's IoUs into a buffer by a loop without branches (SIMD:
    packed ``vdivps`` on ymm registers), then the anchors' updates from it."""

    @njit(**opts)
    def iou_block(c, n, v):
        zero = np.float32(0)
        for q in range(n):
            iw = min(c[2, q], c[6, q]) - max(c[0, q], c[4, q])
            ih = min(c[3, q], c[7, q]) - max(c[1, q], c[5, q])
            inter = max(iw, zero) * max(ih, zero)
            area_a = (c[6, q] - c[4, q]) * (c[7, q] - c[5, q])
            v[q] = inter / (((c[2, q] - c[0, q]) * (c[3, q] - c[1, q]) + area_a) - inter)

    @njit(**opts)
    def best_update(v, n, slot, img, box, best, bx, stamp, boxes):
        """Each anchor's best IoU and (with ``boxes``; without, the negative histogram's anchors: all that histogram
        needs) its first best box."""
        for q in range(n):
            a = slot[q]
            if stamp[a] != img[q]:
                stamp[a] = img[q]
                best[a] = v[q]
                if boxes:
                    bx[a] = box[q]
            elif v[q] > best[a]:
                best[a] = v[q]
                if boxes:
                    bx[a] = box[q]

    @njit(**opts)
    def iou_separable(c, n, v):
        """The IoU of a grid anchor from its column's and row's parts (``c``: intersection width and height, anchor
        width and height, box area; each computed once per column / row of a box's rectangle in the pass):
        ``inter = iw * ih``, ``inter / ((area_box + aw * ah) - inter)``, the same float32 operations."""
        for q in range(n):
            inter = c[0, q] * c[1, q]
            v[q] = inter / ((c[4, q] + c[2, q] * c[3, q]) - inter)

    return iou_block, iou_separable, best_update


@functools.cache
def _strict_kernel():
    """The compiled loops of :class:`StrictTimer` (numba, the kernel's options: no fast-math), made once:
    ``(fused, iou_block, iou_separable, best_update)``."""
    from numba import njit

    opts = {"cache": True, "nogil": True, "error_model": "numpy"}
    return (_iou_best_fused(njit, opts), *_iou_best_vectorised(njit, opts))


def separable_parts(c: np.ndarray, n: int, out: np.ndarray) -> np.ndarray:
    """The first ``n`` pairs' separable parts (5, n) into ``out``: intersection width and height (clamped at 0), the
    anchor's width and height, the box's area (untimed: the pass computes them once per column / row)."""
    gx1, gy1, gx2, gy2, ax1, ay1, ax2, ay2 = c[:, :n]
    np.maximum(np.minimum(gx2, ax2) - np.maximum(gx1, ax1), F32(0), out=out[0, :n])
    np.maximum(np.minimum(gy2, ay2) - np.maximum(gy1, ay1), F32(0), out=out[1, :n])
    np.subtract(ax2, ax1, out=out[2, :n])
    np.subtract(ay2, ay1, out=out[3, :n])
    np.multiply(gx2 - gx1, gy2 - gy1, out=out[4, :n])
    return out


#: the strict floor's formulations (:class:`StrictTimer`)
FORMULATIONS = {
    "fused": "one fused scalar loop",
    "vectorised": "vectorised IoU into a buffer, then the updates",
    "separable": "vectorised IoU from each pair's column and row parts (as the pass's rows), then the updates",
}


class StrictTimer(Timer):
    """The stricter floor: the same pairs (in image, box order), each pair's IoU **and** its anchor's best-IoU /
    first-best-box update (the least an exact labeller cannot skip), CPU seconds of that alone, in the
    :data:`FORMULATIONS` on the same blocks, each with its own state (``by``): one fused scalar loop; the block's IoUs
    vectorised into a buffer, then the updates; the same from each pair's separable parts (computed untimed).
    Pairs come with their anchor index within the image, image and box. With ``boxes=False`` (the negative
    histogram's pairs) the two vectorised formulations update each anchor's best IoU alone, all the histogram needs.
    """

    def __init__(self, anchors_max: int, boxes: bool = True):
        super().__init__()
        self.kernel, self.iou_block, self.iou_separable, self.best_update = _strict_kernel()
        self.boxes = boxes
        self.ids = np.empty((3, BLOCK), np.int64)
        self.sep = np.empty((5, BLOCK), F32)
        self.state = [
            (np.zeros(anchors_max, F32), np.zeros(anchors_max, np.int64), np.full(anchors_max, -1, np.int64))
            for _ in FORMULATIONS
        ]
        self.by = dict.fromkeys(FORMULATIONS, 0.0)
        self.flush_block(0)  # load the compiled loops

    def add_ids(self, boxes: np.ndarray, anchors: np.ndarray, slot: np.ndarray, img: np.ndarray, box: np.ndarray):
        """Queue pairs with their anchor index, image and box (sorted by image, then box, as a labeller walks them)."""
        order = np.lexsort((box, img))
        boxes, anchors, slot, img, box = boxes[order], anchors[order], slot[order], img[order], box[order]
        a = 0
        while a < len(boxes):
            k = min(BLOCK - self.n, len(boxes) - a)
            self.ids[0, self.n : self.n + k] = slot[a : a + k]
            self.ids[1, self.n : self.n + k] = img[a : a + k]
            self.ids[2, self.n : self.n + k] = box[a : a + k]
            Timer.add(self, boxes[a : a + k], anchors[a : a + k])  # the columns, then a full block is timed
            a += k

    def flush_block(self, n: int) -> tuple[float, float, float]:
        """The formulations over the first ``n`` queued pairs: their CPU seconds."""
        slot, img, box = self.ids
        t0 = time.process_time()
        self.kernel(self.cols, n, slot, img, box, *self.state[0])
        t1 = time.process_time()
        self.iou_block(self.cols, n, self.out)
        self.best_update(self.out, n, slot, img, box, *self.state[1], self.boxes)
        t2 = time.process_time()
        sep = separable_parts(self.cols, n, self.sep)
        t3 = time.process_time()
        self.iou_separable(sep, n, self.out)
        self.best_update(self.out, n, slot, img, box, *self.state[2], self.boxes)
        return t1 - t0, t2 - t1, time.process_time() - t3

    def flush(self) -> None:
        if self.n:
            for k, dt in zip(FORMULATIONS, self.flush_block(self.n)):
                self.by[k] += dt
            self.seconds = self.by["fused"]
            self.pairs += self.n
            self.n = 0


class TorchTimer:
    """The same IoU in torch on ``device`` (CUDA: timed between synchronisations, copies not counted)."""

    def __init__(self, device: str = "cuda", block: int = 1 << 24):
        import torch

        self.torch, self.device, self.block = torch, torch.device(device), block
        self.pending: list = []
        self.n = 0
        self.seconds = 0.0
        self.pairs = 0
        self.add(np.zeros((8, 4), F32), np.ones((8, 4), F32))  # warm-up: context and kernels, not counted
        self.flush()
        self.seconds, self.pairs = 0.0, 0

    def add(self, boxes: np.ndarray, anchors: np.ndarray) -> None:
        self.pending.append(np.concatenate((boxes, anchors), axis=1).astype(F32).T)
        self.n += len(boxes)
        if self.n >= self.block:
            self.flush()

    def flush(self) -> None:
        if not self.n:
            return
        torch = self.torch
        c = torch.from_numpy(np.ascontiguousarray(np.concatenate(self.pending, axis=1))).to(self.device)
        gx1, gy1, gx2, gy2, ax1, ay1, ax2, ay2 = c
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        t = time.perf_counter()
        inter = (torch.minimum(gx2, ax2) - torch.maximum(gx1, ax1)).clamp_(min=0) * (
            torch.minimum(gy2, ay2) - torch.maximum(gy1, ay1)
        ).clamp_(min=0)
        iou = inter / ((gx2 - gx1) * (gy2 - gy1) + (ax2 - ax1) * (ay2 - ay1) - inter)
        sync()
        self.seconds += time.perf_counter() - t
        self.pairs += self.n
        del iou
        self.pending, self.n = [], 0


def _low_quality_pairs(spec, shapes, lay, boxes, bimg, n_img, low, put, counts) -> None:
    """The floor's pairs of the boxes ``low`` whose best IoU is below ``neg_iou``: their tying anchors and (torchvision)
    each tying anchor's pairs with IoU > 0 with every box of its image, handed to ``put``; counted in ``counts``."""
    from imbalance_cli.anchors.culled import _nearest_lower_bound, enumerate_pairs
    from imbalance_cli.anchors.iou import aligned_iou32

    p = spec.preset
    lb = _nearest_lower_bound(p, shapes, lay, boxes[low], bimg[low])
    low = low[lb > 0]
    lb = lb[lb > 0]
    if not len(low):
        return
    c2 = enumerate_pairs(p, shapes, lay, boxes[low], bimg[low], lb.astype(F32), low)
    b2 = np.full(len(boxes), -1.0, F32)
    np.maximum.at(b2, c2["box"], c2["iou"])
    tie = c2["iou"] == b2[c2["box"]]
    counts["low_quality_ties"] = int(tie.sum())
    put(boxes[c2["box"][tie]], c2["coords"][tie], c2["anchor"][tie], c2["img"][tie], c2["box"][tie], "tie", c2, tie)
    if spec.semantics == "torchvision":  # each tying anchor against every box of its image
        first = np.searchsorted(bimg, np.arange(n_img + 1))
        img, coords = c2["img"][tie], c2["coords"][tie]
        cnt = first[img + 1] - first[img]
        rep = np.repeat(np.arange(len(img)), cnt)
        st = np.zeros(len(cnt), np.int64)
        np.cumsum(cnt[:-1], out=st[1:])
        bidx = first[img][rep] + (np.arange(int(cnt.sum())) - st[rep])
        v = aligned_iou32(boxes[bidx], coords[rep])
        nz = v > 0
        counts["ties_own_best_box"] = int(nz.sum())
        own = {"iou": v, "level": c2["level"][tie][rep]}
        put(boxes[bidx[nz]], coords[rep][nz], c2["anchor"][tie][rep][nz], img[rep][nz], bidx[nz], "own", own, nz)


def floor_chunk(args, timer=None) -> dict:
    """Find and time the unavoidable pairs of one chunk of images (runs in a worker); with the strict floor, the
    output floor (:mod:`output_floor`) over the same pairs."""
    from output_floor import OutputFloor

    from imbalance_cli.anchors.culled import enumerate_pairs
    from imbalance_cli.anchors.generator import num_anchors
    from imbalance_cli.anchors.layouts import ImageLayouts, ShapeTable

    spec, boxes, bimg, ph, pw, sample, cls = args
    p = spec.preset
    neg = F32(p.neg_iou if spec.semantics != "ssd" else p.pos_iou)
    lay = ImageLayouts(p, ph, pw)
    shapes = ShapeTable(p, int(ph[0]), int(pw[0]))
    timer = Timer() if timer is None else timer
    strict = None  # the strict floor of the labelling's pairs, and of the negative histogram's
    if isinstance(timer, Timer):
        strict = [StrictTimer(int(num_anchors(p, ph, pw).max(initial=1)), boxes=h) for h in (True, False)]
    outputs = OutputFloor() if strict is not None else None

    def put(box_xy, anchor_xy, slot, img, box, role="hist", pairs=None, sel=slice(None)):
        """Pairs to time; ``role`` and ``pairs[sel]``'s IoU and level for the output floor."""
        timer.add(box_xy, anchor_xy)
        if strict is not None:
            strict[role == "hist"].add_ids(box_xy, anchor_xy, slot, img, box)
            if pairs is not None:
                outputs.add(role, anchor_xy, slot, img, box, pairs["iou"][sel], pairs["level"][sel])

    counts = {"at_or_above_neg": 0, "low_quality_ties": 0, "ties_own_best_box": 0, "negative_histogram": 0}
    ids = np.arange(len(boxes))
    best = np.full(len(boxes), -1.0, F32)
    if len(boxes):
        cand = enumerate_pairs(p, shapes, lay, boxes, bimg, np.full(len(boxes), neg, F32), ids)
        if cand is not None:
            counts["at_or_above_neg"] = len(cand["iou"])
            put(boxes[cand["local"]], cand["coords"], cand["anchor"], cand["img"], cand["local"], "neg", cand)
            np.maximum.at(best, cand["local"], cand["iou"])
            del cand
        low = np.flatnonzero(best < neg)
        if len(low) and (spec.semantics == "ssd" or p.allow_low_quality):
            _low_quality_pairs(spec, shapes, lay, boxes, bimg, len(ph), low, put, counts)
    for im in sample:  # the negative histogram: every pair with IoU > 0 in the sampled images
        sel = np.flatnonzero(bimg == im)
        for a in range(0, len(sel), 4):
            part = sel[a : a + 4]
            c3 = enumerate_pairs(
                p, shapes, lay, boxes[part], bimg[part], np.full(len(part), np.finfo(np.float32).tiny, F32), part
            )
            if c3 is not None:
                counts["negative_histogram"] += len(c3["iou"])
                put(boxes[c3["box"]], c3["coords"], c3["anchor"], c3["img"], c3["box"])
    return _chunk_result(timer, strict, outputs, counts, (spec, boxes, cls, len(ph), neg))


def _chunk_result(timer, strict, outputs, counts, chunk) -> dict:
    """Flush the timers (the output floor's loops run here) and gather one chunk's numbers."""
    from imbalance_cli.stats.anchors import SPATIAL_RANGE, _edges

    spec, boxes, cls, n_img, neg = chunk
    nan = float("nan")
    if strict is not None:
        timer.flush()
        for st in strict:
            st.flush()
        hist_args = (_edges(1.0), spec.spatial_bins, SPATIAL_RANGE)
        outputs.run(boxes, cls, n_img, spec.preset.pos_iou, neg, hist_args)
    return {
        "counts": counts,
        "iou_cpu": timer.seconds,
        "pairs": timer.pairs,
        "strict": {k: sum(st.by[k] for st in strict) if strict is not None else nan for k in FORMULATIONS},
        "strict_hist": {k: strict[1].by[k] if strict is not None else nan for k in FORMULATIONS},
        "output_cpu": outputs.seconds if outputs is not None else {},
        "units": outputs.units if outputs is not None else {},
    }


def measure_floor(ds, spec, workers: int, chunk_images: int = 2000, sample=None, timer=None) -> dict:
    """The floor over the whole dataset on ``workers`` processes: pair counts and IoU CPU seconds.

    With a ``timer`` (e.g. :class:`TorchTimer` on CUDA) the chunks run in this process, one after another,
    and ``iou_cpu`` is that timer's seconds.
    """
    import multiprocessing

    from imbalance_cli.stats.anchors import _inputs

    inp = _inputs(ds, spec)
    n = ds.num_images
    jobs = []
    for i0 in range(0, n, chunk_images):
        i1 = min(n, i0 + chunk_images)
        b0, b1 = int(inp.box_start[i0]), int(inp.box_start[i1])
        smp = np.asarray([s - i0 for s in (sample if sample is not None else []) if i0 <= s < i1], np.int64)
        cls = ds.box_category[inp.order[b0:b1]].astype(np.int64)
        job = (spec, inp.scaled[b0:b1], inp.box_image[b0:b1] - i0, inp.padded_h[i0:i1], inp.padded_w[i0:i1], smp, cls)
        jobs.append(job)
    t = time.perf_counter()
    if timer is not None:
        parts = [floor_chunk(j, timer) for j in jobs]
        timer.flush()
        parts = [dict(parts[0], iou_cpu=timer.seconds, pairs=timer.pairs)] + [
            dict(q, iou_cpu=0.0, pairs=0) for q in parts[1:]
        ]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(floor_chunk, jobs, chunksize=1)
    wall = time.perf_counter() - t
    counts = {k: sum(p["counts"][k] for p in parts) for k in parts[0]["counts"]}
    return {
        "counts": counts,
        "pairs": sum(p["pairs"] for p in parts),
        "iou_cpu": sum(p["iou_cpu"] for p in parts),
        "strict": {k: sum(p["strict"][k] for p in parts) for k in FORMULATIONS},
        "strict_hist": {k: sum(p["strict_hist"][k] for p in parts) for k in FORMULATIONS},
        "output_cpu": {k: sum(p["output_cpu"][k] for p in parts) for k in parts[0]["output_cpu"]},
        "units": {k: sum(p["units"][k] for p in parts) for k in parts[0]["units"]},
        "search_wall": wall,
    }


def profile_pass(ds, spec) -> dict:
    """CPU seconds per phase of ``anchor_statistics`` in one process, transfer included (pickled as a pool would)."""
    import imbalance_cli.stats.anchors as sa
    from imbalance_cli.anchors import phases

    real = sa.chunk_statistics

    def through_a_pipe(spec_, chunk):
        prev = phases.switch("transfer")
        chunk = pickle.loads(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
        phases.switch(prev)
        out = real(spec_, chunk)
        prev = phases.switch("transfer")
        out = pickle.loads(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
        phases.switch(prev)
        return out

    sa.chunk_statistics = through_a_pipe
    try:
        one = sa.AnchorSpec.build("retinanet", device="cpu", workers=1, negative_iou_sample=spec.negative_iou_sample)
        c = time.process_time()
        phases.enable()  # "set-up" open: the compiled pass's load (once per command) lands there, not in a phase
        if one.engine == "culled":
            from imbalance_cli.anchors.culled import warm_kernel

            warm_kernel(one.preset)
        s = sa.anchor_statistics(ds, spec=one)
        times = phases.read()
        cpu = time.process_time() - c
    finally:
        sa.chunk_statistics = real
    return {"phases": times, "cpu": cpu, "foreground": s["foreground"], "ignored": s["ignored"]}


def compile_pass_once() -> float:
    """Load or compile the culled engine's pass in a child process, so numba's cache holds it; CPU seconds.

    The first run after an install compiles it there (about 30 CPU s); later runs only load it. The
    profiled pass then loads it from the cache in its set-up, as every later command does.
    """
    import subprocess

    code = (
        "from imbalance_cli.anchors.culled import warm_kernel; from imbalance_cli.specs import AnchorSpec; "
        "warm_kernel(AnchorSpec.build('retinanet', device='cpu', workers=1).preset)"
    )
    before = os.times()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", default="objects365", choices=["objects365", "coco-train"])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--file", default=None, help="an annotation file instead of a generated one")
    ap.add_argument("--data", type=Path, default=Path("/work/bench-data"))
    ap.add_argument("--images", type=int, default=None, help="only the first N images")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args(argv)
    import load as load_bench

    import imbalance_cli
    from imbalance_cli.specs import AnchorSpec
    from imbalance_cli.stats.anchors import anchor_statistics

    path = Path(args.file) if args.file else load_bench.make(args.kind, args.scale, args.data)
    print(
        f"{len(os.sched_getaffinity(0))} cores, workers={args.workers}; load average {os.getloadavg()[0]:.1f} at start"
    )
    print(f"compiled pass ready in a separate process: {compile_pass_once():.1f} CPU s (not counted below)")
    ds = imbalance_cli.load(str(path))
    if args.images and args.images < ds.num_images:
        ds = ds.subset_images(np.arange(args.images))
    print(f"{path.name}: {ds.num_images:,} images, {ds.num_boxes:,} boxes; preset retinanet (torchvision matcher)")
    spec = AnchorSpec.build("retinanet", device="cpu", workers=args.workers)
    sample = None
    if spec.negative_iou_sample is not None and spec.negative_iou_sample < ds.num_images:
        sample = np.sort(
            np.random.default_rng(spec.seed).choice(ds.num_images, size=spec.negative_iou_sample, replace=False)
        )
    fl = measure_floor(ds, spec, args.workers, sample=sample)
    _print_floor(fl, args.workers)
    prof = profile_pass(ds, spec)
    t = time.perf_counter()
    s = anchor_statistics(ds, spec=spec)
    wall = time.perf_counter() - t
    same = (s["foreground"], s["ignored"]) == (prof["foreground"], prof["ignored"])
    total = sum(prof["phases"].values())
    print(
        f"\nPASS in one process: {total:.2f} CPU s; with {args.workers} workers: {wall:.2f} s wall "
        f"(totals {'identical' if same else 'DIFFERENT'}: foreground {s['foreground']:,}, ignored {s['ignored']:,})"
    )
    _print_phases(prof, fl)
    _print_outputs(prof, fl)
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (the machine is shared: CPU seconds, not wall, compared)")


def _strict(fl: dict) -> tuple[float, str, float]:
    """The strict floor: the cheapest of its formulations, which, and its part on the negative histogram's pairs."""
    k = min(FORMULATIONS, key=lambda f: fl["strict"][f])
    return fl["strict"][k], FORMULATIONS[k], fl["strict_hist"][k]


def _print_floor(fl: dict, workers: int) -> None:
    n = max(fl["pairs"], 1)
    print(
        "\nunavoidable pairs: " + ", ".join(f"{k} {v:,}" for k, v in fl["counts"].items()) + f"; total {fl['pairs']:,}"
    )
    print(
        f"FLOOR: one vectorised float32 IoU of those pairs: {fl['iou_cpu']:.2f} CPU s "
        f"= {fl['iou_cpu'] / workers:.2f} s on {workers} cores ({1e9 * fl['iou_cpu'] / n:.1f} ns per pair)"
    )
    strict, how, hist = _strict(fl)
    print(
        f"STRICT FLOOR: the same pairs' IoU and each anchor's best-IoU / first-box update, compiled: "
        f"{strict:.2f} CPU s ({1e9 * strict / n:.1f} ns per pair), the cheapest formulation: {how} "
        "(" + ", ".join(f"{k} {v:.2f}" for k, v in fl["strict"].items()) + "); "
        f"of it the negative histogram's pairs {hist:.2f}"
    )
    out, u = fl["output_cpu"], fl["units"]
    print(
        f"OUTPUT FLOOR: {sum(out.values()):.2f} CPU s: labels {out['labels']:.2f} "
        f"({1e9 * out['labels'] / max(u['labelled anchors'], 1):.1f} ns per labelled anchor), per-positive statistics "
        f"{out['positives']:.2f} ({1e9 * out['positives'] / max(u['positives'], 1):.1f} ns per positive), ties and "
        f"low-quality {out['ties']:.2f} ({1e9 * out['ties'] / max(u['boxes'], 1):.1f} ns per box); units: "
        + ", ".join(f"{k} {v:,}" for k, v in u.items())
    )


def _print_phases(prof: dict, fl: dict) -> None:
    """Each phase of the pass against the floor and the strict floor."""
    total = sum(prof["phases"].values())
    strict = _strict(fl)[0]
    print(f"RATIO pass / floor: {total / fl['iou_cpu']:.1f}x; pass / strict floor: {total / strict:.1f}x (CPU s)\n")
    print("| phase | pass, CPU s | share | x floor | x strict floor |\n|---|---|---|---|---|")
    for k, v in prof["phases"].items():
        print(f"| {k} | {v:.2f} | {100 * v / total:.0f}% | {v / fl['iou_cpu']:.2f} | {v / strict:.2f} |")
    print(f"| **total** | **{total:.2f}** | 100% | **{total / fl['iou_cpu']:.1f}** | **{total / strict:.1f}** |")
    print(f"| floor: IoU of the unavoidable pairs | {fl['iou_cpu']:.2f} | | 1 | |")
    print(f"| strict floor: their IoU + each anchor's best-IoU / first-box update, compiled | {strict:.2f} | | | 1 |")


def _print_outputs(prof: dict, fl: dict) -> None:
    """The pass's phases against the strict floor plus the output floor, part by part."""
    ph, out = prof["phases"], fl["output_cpu"]
    strict, _, hist = _strict(fl)
    parts = {"IoU + best update (strict floor, the labelling's pairs)": strict - hist, "labels (1)": out["labels"]}
    parts.update({"per-positive statistics (2)": out["positives"], "ties / low-quality (3)": out["ties"]})
    lab = ph.get("iou", 0.0) + ph.get("labelling", 0.0)
    floor = strict + sum(out.values())
    print("\n| phase | pass, CPU s | floor part, CPU s | ratio |\n|---|---|---|---|")
    for k, v in parts.items():
        print(f"| {k} | (in labelling) | {v:.2f} | |")
    print(f"| labelling (IoU inside): the four above | {lab:.2f} | {floor - hist:.2f} | {lab / (floor - hist):.1f} |")
    h = ph.get("histograms", 0.0)
    print(f"| histograms: strict floor of the negative histogram's pairs | {h:.2f} | {hist:.2f} | {h / hist:.1f} |")
    for k in ("enumeration", "set-up", "accumulators", "transfer"):
        print(f"| {k} | {ph.get(k, 0.0):.2f} | 0 | |")
    total = sum(ph.values())
    print(f"| **total** | **{total:.2f}** | **{floor:.2f}** | **{total / floor:.1f}** |")
    print(f"RATIO pass / (strict floor + output floor): {total / floor:.1f}x")
    u = fl["units"]
    same = (u["positives"], u["labelled anchors"] - u["positives"]) == (prof["foreground"], prof["ignored"])
    print(f"output floor's units against the pass's totals: positives and ignored {'equal' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
