"""The dense engine: every anchor against every box, in torch, on any device (the CUDA path).

Images sharing a padded size share one anchor tensor (from
:func:`~imbalance_cli.anchors.generator.grid_anchors`) and are batched, fewest boxes first, so that
about ``max_elements`` IoU values exist at a time; anchors are processed in chunks within a batch.
Labels follow :mod:`imbalance_cli.anchors.rules`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from imbalance_cli.anchors import rules
from imbalance_cli.anchors.generator import F32, grid_anchors, num_anchors
from imbalance_cli.anchors.iou import box_iou_batched
from imbalance_cli.anchors.presets import AnchorPreset
from imbalance_cli.anchors.rules import IDX, MatchOutput, group_starts
from imbalance_cli.progress import progress


class DenseOutput(NamedTuple):
    """Batched dense result: matched (B, A), iou (B, A) (IoU with the matched box for positives,
    best IoU otherwise), anchor_max (B, A) best IoU of each anchor (-1 when the image has no box),
    box_max (B, M), box_best (B, M) first anchor index attaining ``box_max``, anchor_box (B, A) each anchor's
    best box (first on ties)."""

    matched: "object"
    iou: "object"
    anchor_max: "object"
    box_max: "object"
    box_best: "object"
    anchor_box: "object"


def _empty_output(B: int, M: int, A: int, dev) -> DenseOutput:
    """The output for images without boxes or an empty anchor set: every anchor background."""
    import torch

    z = torch.full((B, A), -1, dtype=torch.int64, device=dev)
    return DenseOutput(
        z,
        torch.full((B, A), -1.0, device=dev),
        torch.full((B, A), -1.0, device=dev),
        torch.zeros((B, M), device=dev),
        torch.zeros((B, M), dtype=torch.int64, device=dev),
        torch.zeros((B, A), dtype=torch.int64, device=dev),
    )


def _max_iou_pass(boxes, anchors, valid, chunk: int, neg_fill) -> tuple:
    """One pass over the anchors in chunks: ``(anchor max IoU, its box, box max IoU, its anchor, the IoU matrix
    when one chunk held every anchor else None)``; ties go to the first index, as ``max`` gives them."""
    import torch

    B, M, A, dev = boxes.shape[0], boxes.shape[1], anchors.shape[0], anchors.device
    amax = torch.empty((B, A), dtype=torch.float32, device=dev)
    aarg = torch.empty((B, A), dtype=torch.int64, device=dev)
    gmax = torch.full((B, M), -1.0, dtype=torch.float32, device=dev)
    gbest = torch.zeros((B, M), dtype=torch.int64, device=dev)
    kept = None
    for s in range(0, A, chunk):
        iou = box_iou_batched(boxes, anchors[s : s + chunk])
        iou = torch.where(valid[:, :, None], iou, neg_fill)
        if chunk >= A:
            kept = iou
        v, ix = iou.max(dim=1)
        amax[:, s : s + chunk] = v
        aarg[:, s : s + chunk] = ix
        cv, cix = iou.max(dim=2)
        better = cv > gmax  # strict: earlier chunks win ties (first index)
        gmax = torch.where(better, cv, gmax)
        gbest = torch.where(better, cix + s, gbest)
    return amax, aarg, gmax, gbest, kept


def dense_match_batched(
    anchors,
    boxes,
    valid,
    pos_iou: float,
    neg_iou: float,
    allow_low_quality: bool = True,
    semantics: str = "torchvision",
    max_elements: int = 1 << 24,
) -> DenseOutput:
    """Dense matcher over a batch of images sharing one anchor set.

    ``anchors`` (A, 4), ``boxes`` (B, M, 4) padded with anything where ``valid`` (B, M) is False.
    Anchors are processed in chunks so that at most ``max_elements`` IoU values exist at a time;
    when more than one chunk is needed the low-quality pass recomputes the IoU chunk by chunk.
    """
    import torch

    rules.check(semantics, "dense")
    dev = anchors.device
    B, M = boxes.shape[0], boxes.shape[1]
    A = anchors.shape[0]
    hi = torch.tensor(pos_iou, dtype=torch.float32, device=dev)
    lo = torch.tensor(neg_iou, dtype=torch.float32, device=dev)
    boxes = boxes.to(torch.float32)
    anchors = anchors.to(torch.float32)
    if M == 0 or A == 0:
        return _empty_output(B, M, A, dev)
    chunk = max(1, min(A, max_elements // max(1, B * M)))
    neg_fill = torch.tensor(-1.0, device=dev)
    amax, aarg, gmax, gbest, kept = _max_iou_pass(boxes, anchors, valid, chunk, neg_fill)
    has_box = valid.any(dim=1)[:, None]
    matched = rules.threshold_labels(amax, aarg, hi, lo, semantics)
    if semantics in ("torchvision", "mmdet") and allow_low_quality:
        order = torch.arange(1, M + 1, device=dev)[None, :, None]
        for s in range(0, A, chunk):
            iou = (
                kept
                if kept is not None
                else torch.where(valid[:, :, None], box_iou_batched(boxes, anchors[s : s + chunk]), neg_fill)
            )
            tie = (iou == gmax[:, :, None]) & valid[:, :, None]
            matched[:, s : s + chunk] = rules.low_quality_update(
                matched[:, s : s + chunk], aarg[:, s : s + chunk], tie, order, semantics
            )
    elif semantics == "ssd":
        matched = rules.ssd_forced(matched, gbest, valid)
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
    return DenseOutput(matched, iou_out, amax, gmax, gbest, aarg)


def default_max_elements(dev) -> int:
    """IoU values held at once: about 10 float32 (B, M, chunk) temporaries must fit in free CUDA memory."""
    import torch

    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(max(1 << 22, min(1 << 28, free // 64)))
    return 1 << 22


# long: 14 parameters and the docstring that explains them; the body is one batching loop
def dense_match_dataset(
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
    device="cpu",
    images: np.ndarray | None = None,
    negative_edges: np.ndarray | None = None,
    max_elements: int | None = None,
    progress_description: str | None = "anchors (dense)",
):
    """Dense matcher over a dataset: images sharing a padded size share one anchor tensor and are
    batched (fewest boxes first) so that about ``max_elements`` IoU values exist at a time.

    Same inputs and output as :func:`~imbalance_cli.anchors.culled.culled_match_dataset`; ``images``
    restricts the work to some image rows (others get no positives). With ``negative_edges`` it
    also returns the histogram of negative anchors' best IoU over those edges (exact zeros
    excluded) and the count of exact zeros: ``(MatchOutput, counts, zeros)``; otherwise
    ``(MatchOutput, None, None)``. ``progress_description=None`` shows no bar.
    """
    import torch

    rules.check(semantics, "dense")
    pos, neg, lowq = rules.thresholds(preset, semantics, pos_iou, neg_iou, allow_low_quality)
    dev = torch.device(device)
    if max_elements is None:
        max_elements = default_max_elements(dev)
    boxes = np.ascontiguousarray(boxes, dtype=F32).reshape(-1, 4)
    box_image = np.asarray(box_image, np.int64)
    ph = np.asarray(padded_h, np.int64)
    pw = np.asarray(padded_w, np.int64)
    n_img, N = len(ph), len(boxes)
    start = np.searchsorted(box_image, np.arange(n_img + 1)) if N else np.zeros(n_img + 1, np.int64)
    nbox = np.diff(start)
    sel = np.arange(n_img) if images is None else np.asarray(images, np.int64)
    acc = _DenseFold(n_img, N, negative_edges, dev)
    # images without boxes: all background, every IoU exactly zero
    empty = sel[nbox[sel] == 0]
    if acc.want_neg and len(empty):
        acc.zeros += int(num_anchors(preset, ph[empty], pw[empty]).sum())
    batches = _batches(preset, sel[nbox[sel] > 0], nbox, ph, pw, max_elements)
    cache_key, anchors_t, level_t, level_np = None, None, None, None
    it = (
        batches
        if progress_description is None
        else progress(batches, total=len(batches), description=progress_description)
    )
    for imgs in it:
        k = (int(ph[imgs[0]]), int(pw[imgs[0]]))
        if k != cache_key:
            anchors_t, level_t = grid_anchors(preset, k[0], k[1], device=dev)
            level_np = level_t.cpu().numpy()
            cache_key = k
        idx, valid_np = _padded_rows(start, nbox, imgs)
        bt = torch.from_numpy(boxes[idx]).to(dev)
        vt = torch.from_numpy(valid_np).to(dev)
        out = dense_match_batched(anchors_t, bt, vt, pos, neg, lowq, semantics, max_elements)
        acc.fold(out, imgs, start, idx, valid_np, level_t, level_np)
    return acc.result()


def _padded_rows(start: np.ndarray, nbox: np.ndarray, imgs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(box rows (B, M), valid (B, M))`` of a batch padded to its most boxes (padding repeats the first row)."""
    Mx = int(nbox[imgs].max())
    idx = start[imgs][:, None] + np.arange(Mx)[None, :]
    valid_np = np.arange(Mx)[None, :] < nbox[imgs][:, None]
    return np.where(valid_np, idx, start[imgs][:, None]), valid_np


def _batches(preset: AnchorPreset, work: np.ndarray, nbox: np.ndarray, ph: np.ndarray, pw: np.ndarray, max_elements):
    """Images ``work`` (each with a box) in batches of one padded size, fewest boxes first, of about
    ``max_elements`` IoU values each (at least one image)."""
    key = ph[work] * 1_000_003 + pw[work]
    order = np.lexsort((nbox[work], key))
    work = work[order]
    ks = key[order]
    st = group_starts(ks)
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
    return batches


class _DenseFold:
    """The dataset outputs of :func:`dense_match_dataset`, batch by batch (:meth:`fold`), then :meth:`result`."""

    def __init__(self, n_img: int, N: int, negative_edges, dev):
        import torch

        self.ignored = np.zeros(n_img, np.int64)
        self.ignored_box = np.zeros(N, np.int64)
        self.box_max = np.zeros(N, F32)
        self.box_best = np.zeros(N, np.int64)
        self.box_best_level = np.zeros(N, np.int64)
        self.parts = {k: [] for k in ("img", "anchor", "level", "box", "iou")}
        self.want_neg = negative_edges is not None
        self.zeros = 0
        if self.want_neg:
            self.n_edges = len(negative_edges)
            self.edges_t = torch.as_tensor(np.asarray(negative_edges, np.float32), device=dev)
            self.neg_counts = torch.zeros(len(negative_edges) - 1, dtype=torch.int64, device=dev)

    def fold(self, out: DenseOutput, imgs, start, idx, valid_np, level_t, level_np) -> None:
        """One batch's positives, ignored counts, box maxima and (optionally) negatives' best IoU."""
        import torch

        dev = out.matched.device
        m = out.matched
        bi, ai = torch.nonzero(m >= 0, as_tuple=True)
        mb = m[bi, ai]
        imgs_t = torch.from_numpy(imgs).to(dev)
        start_t = torch.from_numpy(start[imgs]).to(dev)
        self.parts["img"].append(imgs_t[bi].cpu().numpy())
        self.parts["anchor"].append(ai.cpu().numpy())
        self.parts["level"].append(level_t[ai].cpu().numpy())
        self.parts["box"].append((start_t[bi] + mb).cpu().numpy())
        self.parts["iou"].append(out.iou[bi, ai].cpu().numpy())
        self.ignored[imgs] = (m == -2).sum(dim=1).cpu().numpy()
        ib, ia = torch.nonzero(m == -2, as_tuple=True)
        np.add.at(self.ignored_box, (start_t[ib] + out.anchor_box[ib, ia]).cpu().numpy(), 1)
        gm, gb = out.box_max.cpu().numpy(), out.box_best.cpu().numpy()
        flat = idx[valid_np]
        self.box_max[flat] = gm[valid_np]
        self.box_best[flat] = gb[valid_np]
        self.box_best_level[flat] = level_np[gb[valid_np]]
        if self.want_neg:
            v = out.anchor_max[m == -1]
            nz = v[v > 0]
            self.zeros += int((v == 0).sum())
            b = torch.bucketize(nz, self.edges_t, right=True) - 1
            b = b[(b >= 0) & (b < self.n_edges - 1)]
            self.neg_counts += torch.bincount(b, minlength=self.n_edges - 1)

    def result(self):
        """``(MatchOutput, negative counts, zeros)``, the last two None without negative edges."""

        def cat(k, dt):
            return np.concatenate(self.parts[k]).astype(dt) if self.parts[k] else np.zeros(0, dt)

        res = MatchOutput(
            cat("img", IDX),
            cat("anchor", np.int64),
            cat("level", np.int8),
            cat("box", IDX),
            cat("iou", F32),
            self.ignored,
            self.box_max,
            self.box_best,
            self.box_best_level,
            0,
            box_ignored=self.ignored_box,
        )
        if self.want_neg:
            return res, self.neg_counts.cpu().numpy(), self.zeros
        return res, None, None
