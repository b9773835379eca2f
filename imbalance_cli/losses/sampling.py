"""Hard samplers for anchors (Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI 2021, §4.1.1): which
anchors enter the classification loss.

Every sampler takes either a boolean ``positive`` mask over anchors (optionally with a
``negative`` mask; by default every non-positive anchor is a negative, so drop ignored anchors
first or pass ``negative``) or the matcher's integer labels (``imbalance_cli.anchors.matcher``:
box index >= 0 positive, -1 negative, -2 ignored), and returns a boolean mask of the sampled
anchors. Randomness comes only from the
``generator`` argument (a ``torch.Generator`` on the CPU), so runs are reproducible.

Sample size: with ``num_samples`` (R-CNN style) at most ``positive_fraction * num_samples``
positives are drawn at random and the rest are negatives (padding with negatives when positives
are short); with ``num_samples=None`` every positive is kept and negatives are drawn so that
positives make up ``positive_fraction`` of the sample (at least ``min_negatives`` negatives).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["none_sampler", "random_sampler", "ohem_sampler", "iou_balanced_sampler", "sample_sizes"]


def _masks(positive: Tensor, negative: Tensor | None):
    if positive.dtype != torch.bool:  # matcher labels: >= 0 positive, -1 negative, < -1 ignored
        labels = positive
        positive = labels >= 0
        if negative is None:
            negative = labels == -1
    positive = positive.to(torch.bool)
    negative = ~positive if negative is None else (negative.to(torch.bool) & ~positive)
    return positive, negative


def sample_sizes(
    num_pos: int, num_neg: int, num_samples: int | None, positive_fraction: float, min_negatives: int = 1
) -> tuple[int, int]:
    """How many positives and negatives to draw (see the module docstring)."""
    if not 0 < positive_fraction <= 1:
        raise ValueError(f"positive_fraction must be in (0, 1], got {positive_fraction}")
    if num_samples is not None:
        if num_samples < 0:
            raise ValueError("num_samples must be >= 0")
        n_pos = min(num_pos, int(positive_fraction * num_samples))
        return n_pos, min(num_neg, num_samples - n_pos)
    want = math.ceil(num_pos * (1 - positive_fraction) / positive_fraction - 1e-9)
    return num_pos, min(num_neg, max(want, min_negatives))


def _pick_random(mask: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    idx = torch.nonzero(mask).squeeze(1)
    if k >= idx.numel():
        return idx
    perm = torch.randperm(idx.numel(), generator=generator)[:k].to(idx.device)
    return idx[perm]


def _to_mask(like: Tensor, *index_sets: Tensor) -> Tensor:
    out = torch.zeros_like(like, dtype=torch.bool)
    for idx in index_sets:
        out[idx] = True
    return out


def none_sampler(positive: Tensor, negative: Tensor | None = None) -> Tensor:
    """No sampling: every positive and negative anchor is used (focal-loss style, survey §4.1.2)."""
    positive, negative = _masks(positive, negative)
    return positive | negative


def random_sampler(
    positive: Tensor,
    negative: Tensor | None = None,
    num_samples: int | None = None,
    positive_fraction: float = 0.5,
    min_negatives: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random sampling (survey §4.1.1; Faster R-CNN: 256 anchors, half positive): uniform draws within each set."""
    positive, negative = _masks(positive, negative)
    n_pos, n_neg = sample_sizes(int(positive.sum()), int(negative.sum()), num_samples, positive_fraction, min_negatives)
    return _to_mask(positive, _pick_random(positive, n_pos, generator), _pick_random(negative, n_neg, generator))


def ohem_sampler(
    positive: Tensor,
    losses: Tensor,
    negative: Tensor | None = None,
    num_samples: int | None = None,
    positive_fraction: float = 0.5,
    min_negatives: int = 1,
) -> Tensor:
    """Online hard example mining (Shrivastava et al. 2016; survey §4.1.1): the highest-loss examples.

    ``losses`` ``(A,)`` are the anchors' current losses (detached). The positives (when they must be
    subsampled) and the negatives with the largest losses are kept; deterministic.
    """
    positive, negative = _masks(positive, negative)
    losses = losses.detach().reshape(positive.shape)
    n_pos, n_neg = sample_sizes(int(positive.sum()), int(negative.sum()), num_samples, positive_fraction, min_negatives)

    def top(mask, k):
        idx = torch.nonzero(mask).squeeze(1)
        if k >= idx.numel():
            return idx
        return idx[torch.topk(losses[idx], k).indices]

    return _to_mask(positive, top(positive, n_pos), top(negative, n_neg))


def iou_balanced_sampler(
    positive: Tensor,
    ious: Tensor,
    negative: Tensor | None = None,
    num_samples: int | None = None,
    positive_fraction: float = 0.5,
    num_bins: int = 3,
    max_iou: float | None = None,
    min_negatives: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """IoU-balanced negative sampling (Pang et al., Libra R-CNN 2019; survey §4.1.1).

    The negatives' IoU range ``[0, max_iou)`` (default: up to the largest negative IoU) is cut into
    ``num_bins`` (K) equal bins and an equal number of negatives is drawn at random from each bin;
    bins with too few negatives give all they have and the shortfall is drawn uniformly from the
    remaining negatives. ``ious`` ``(A,)``: each anchor's best IoU with any ground truth.
    Positives are drawn as in :func:`random_sampler`.
    """
    if num_bins < 1:
        raise ValueError("num_bins must be >= 1")
    positive, negative = _masks(positive, negative)
    ious = ious.detach().reshape(positive.shape).to(torch.float64)
    n_pos, n_neg = sample_sizes(int(positive.sum()), int(negative.sum()), num_samples, positive_fraction, min_negatives)
    pos_idx = _pick_random(positive, n_pos, generator)
    neg_all = torch.nonzero(negative).squeeze(1)
    if n_neg >= neg_all.numel():
        return _to_mask(positive, pos_idx, neg_all)
    neg_iou = ious[neg_all].clamp(min=0.0)
    top = float(neg_iou.max()) if max_iou is None else float(max_iou)
    width = top / num_bins if top > 0 else 1.0
    bin_of = (neg_iou / width).floor().clamp(max=num_bins - 1).long()
    per_bin = n_neg // num_bins
    extra = n_neg - per_bin * num_bins
    chosen = torch.zeros(neg_all.numel(), dtype=torch.bool, device=neg_all.device)
    for b in range(num_bins):
        in_bin = torch.nonzero(bin_of == b).squeeze(1)
        k = per_bin + (1 if b >= num_bins - extra else 0)  # leftovers go to the high-IoU bins
        if k >= in_bin.numel():
            chosen[in_bin] = True
        else:
            perm = torch.randperm(in_bin.numel(), generator=generator)[:k].to(in_bin.device)
            chosen[in_bin[perm]] = True
    short = n_neg - int(chosen.sum())
    if short > 0:
        rest = torch.nonzero(~chosen).squeeze(1)
        perm = torch.randperm(rest.numel(), generator=generator)[:short].to(rest.device)
        chosen[rest[perm]] = True
    return _to_mask(positive, pos_idx, neg_all[chosen])
