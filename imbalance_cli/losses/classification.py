"""Classification losses against foreground-background and hard/easy imbalance.

Conventions: ``logits`` are raw scores; sigmoid losses take ``targets`` of the same shape
(one-hot or soft labels in [0, 1]); softmax losses take integer ``labels``. ``reduction`` is
"none" (element-wise), "mean" or "sum". Formulas are quoted from the survey (Oksuz et al., Imbalance Problems in Object
Detection: A Review, TPAMI 2021, §4.1.2, Eqs. 2-6) and the papers named in each docstring.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "reduce_loss",
    "sigmoid_ce",
    "softmax_ce",
    "focal_loss",
    "ghm_c",
    "iou_balanced_cls",
    "GHMC",
]


def reduce_loss(loss: Tensor, reduction: str) -> Tensor:
    """Apply ``reduction`` ("none" | "mean" | "sum") to an element-wise loss.

    "mean" of an empty tensor is 0 (not NaN), so a batch without positives stays finite.
    """
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() * 0.0 if loss.numel() == 0 else loss.mean()
    raise ValueError(
        f"Invalid value for arg 'reduction': '{reduction}'; supported reduction modes: 'none', 'mean', 'sum'"
    )


def sigmoid_ce(logits: Tensor, targets: Tensor, weight: Tensor | None = None, reduction: str = "none") -> Tensor:
    """Binary cross-entropy on sigmoid scores (Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI
    2021, Eq. 2, one binary task per class).

    ``CE(p, y) = -y log p - (1 - y) log(1 - p)``, ``p = sigmoid(logits)``, computed stably from
    logits. ``targets`` has the shape of ``logits`` (one-hot or soft labels); ``weight``
    (broadcastable) multiplies the element-wise loss.
    """
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, reduction)


def softmax_ce(
    logits: Tensor,
    labels: Tensor,
    weight: Tensor | None = None,
    ignore_index: int = -1,
    reduction: str = "none",
) -> Tensor:
    """Softmax cross-entropy ``-log p_y`` (Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI 2021,
    Eq. 2 with the softmax probability).

    ``logits`` is ``(B, K)``; ``labels`` ``(B,)`` integer classes in ``0..K-1`` (the detector's
    background is just one of the K classes). Entries equal to ``ignore_index`` get loss 0 and
    are left out of "mean". ``weight`` is an optional per-class weight ``(K,)``; "mean" averages
    over the non-ignored boxes (it is not weight-normalised, unlike ``F.cross_entropy``).
    """
    labels = labels.long()
    keep = labels != ignore_index
    safe = torch.where(keep, labels, torch.zeros_like(labels))
    logp = F.log_softmax(logits, dim=-1)
    loss = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    if weight is not None:
        loss = loss * weight.to(loss.dtype)[safe]
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    if reduction == "mean":
        return loss[keep].sum() * 0.0 if not bool(keep.any()) else loss[keep].mean()
    return reduce_loss(loss, reduction)


def focal_loss(
    logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0, reduction: str = "none"
) -> Tensor:
    """Sigmoid focal loss (Lin et al., ICCV 2017; Oksuz et al., Imbalance Problems in Object
    Detection: A Review, TPAMI 2021, Eq. 3).

    ``FL = -α_t (1 - p_t)^γ log p_t`` with ``p_t = p y + (1 - p)(1 - y)`` and
    ``α_t = α y + (1 - α)(1 - y)``; a negative ``alpha`` disables α-weighting. Defaults
    α = 0.25, γ = 2 (RetinaNet). Computed as mmdetection 3.3.0's ``py_sigmoid_focal_loss``
    (``mmdet/models/losses/focal_loss.py``): ``1 - p_t`` directly as ``(1 - p) y + p (1 - y)``, so it
    does not cancel to 0 for a confidently right negative, and the gradient stays finite for γ < 1
    (torchvision's ``sigmoid_focal_loss`` forms ``1 - p_t`` by subtraction: the same values up to
    rounding, but a NaN gradient there).
    """
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    q = (1 - p) * targets + p * (1 - targets)  # 1 - p_t
    weight = q.pow(gamma)
    if alpha >= 0:
        weight = (alpha * targets + (1 - alpha) * (1 - targets)) * weight
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight
    return reduce_loss(loss, reduction)


def _pos_weights(values: Tensor, like: Tensor) -> Tensor:
    if values.dim() == like.dim() - 1:
        values = values.unsqueeze(-1)
    return values.to(like.dtype).expand_as(like)


def iou_balanced_cls(
    logits: Tensor,
    targets: Tensor,
    ious: Tensor,
    eta: float = 1.5,
    loss: str = "ce",
    alpha: float = 0.25,
    gamma: float = 2.0,
    reduction: str = "none",
) -> Tensor:
    """IoU-balanced classification loss (Wu et al., IoU-balanced Loss Functions for Single-stage Object Detection, PRL
    2022, Eqs. 1-2), sigmoid form.

    ``L = sum_{i in Pos} w_i CE_i + sum_{i in Neg} CE_i`` with
    ``w_i = iou_i^η * sum_{Pos} CE / (sum_{Pos} iou^η CE + 1e-6)`` (Eq. 2 with the ``+ 1e-6`` of the
    authors' ``iou_balanced_sigmoid_focal_loss``, ShengkaiWu/IoU-aware-single-stage-object-detector,
    mmdet/core/loss/losses.py): positives with a better regressed box are up-weighted while the
    positives' total loss is (up to that 1e-6) unchanged. Positives are the
    elements with ``targets > 0``; ``ious`` (the IoU of each anchor's *regressed* box with its
    ground truth) is ``(B,)`` or the shape of ``logits`` and is used as a constant (no gradient
    through the weights). η = 1.5 (Table 4). ``loss`` is the base loss: "ce" (Eq. 1) or
    "focal" (RetinaNet, with ``alpha``/``gamma``).
    """
    targets = targets.to(logits.dtype)
    if loss == "ce":
        base = sigmoid_ce(logits, targets)
    elif loss == "focal":
        base = focal_loss(logits, targets, alpha=alpha, gamma=gamma)
    else:
        raise ValueError(f"loss must be 'ce' or 'focal', got {loss!r}")
    pos = targets > 0
    with torch.no_grad():
        iou = _pos_weights(ious.detach(), logits).clamp(min=0.0)
        raw = torch.where(pos, iou**eta, torch.ones_like(iou))
        num = (base.detach() * pos).sum()
        den = (base.detach() * raw * pos).sum()
        scale = num / (den + 1e-6)  # the authors' normaliser, with their + 1e-6
        weight = torch.where(pos, raw * scale, torch.ones_like(raw))
    return reduce_loss(base * weight, reduction)


def ghm_edges(bins: int, top: float | None = None, device=None) -> Tensor:
    """Bin edges ``0, 1/bins, ..., 1`` in float32 with the last edge ``top`` (mmdetection 3.3.0's ``GHMC`` / ``GHMR``).

    As there, ``k / bins`` is a float32 division, so an edge may lie just below ``k / bins`` and a
    gradient norm equal to it falls in the upper bin. ``top=None`` is GHM-C's last edge, float32
    ``1 + 1e-6`` (mmdetection's ``edges[-1] += 1e-6``); GHM-R passes 1000.
    """
    edges = torch.arange(bins + 1, device=device).to(torch.float32) / bins
    if top is None:
        edges[-1] += 1e-6
    else:
        edges[-1] = top
    return edges


def ghm_bin_weights(g: Tensor, valid: Tensor, edges: Tensor, momentum: float, acc_counts: Tensor | None) -> Tensor:
    """Gradient-density weights of GHM (Li et al., "Gradient Harmonized Single-stage Detector", AAAI 2019, Eqs. 3-4, 8).

    ``g`` gradient norms (detached), ``valid`` mask, ``edges`` from :func:`ghm_edges`. With
    ``tot`` the number of valid elements and ``n`` the number of bins that hold valid elements in
    this batch, an element of bin ``i`` gets ``tot / (n * R_i)`` where ``R_i`` is the bin's count,
    or with ``momentum`` μ > 0 its moving count ``S_i <- μ S_i + (1 - μ) R_i`` (Eq. 8) kept in
    ``acc_counts`` (starts at 0; only non-empty bins are updated), as mmdetection's ``GHMC``/``GHMR``.
    """
    bins = edges.numel() - 1
    g = g.detach()
    # compared in g's dtype (float32 edges are exact in float64), as mmdetection's ``g >= edges[i]``
    idx = torch.searchsorted(edges.to(g.device, g.dtype), g.contiguous(), right=True) - 1
    inside = valid & (idx >= 0) & (idx < bins)
    idx = idx.clamp(0, bins - 1)
    tot = max(float(valid.sum()), 1.0)
    counts = torch.bincount(idx[inside], minlength=bins).to(torch.float64)
    nonempty = counts > 0
    n = int(nonempty.sum())
    if momentum > 0:
        if acc_counts is None:
            raise ValueError("momentum > 0 needs an acc_counts buffer (use the GHMC / GHMR module)")
        acc = acc_counts.to(torch.float64)
        acc = torch.where(nonempty, momentum * acc + (1 - momentum) * counts, acc)
        acc_counts.copy_(acc.to(acc_counts.dtype))
        denom = acc
    else:
        denom = counts
    per_bin = torch.where(nonempty, tot / denom.clamp(min=1e-300), torch.zeros_like(denom))
    if n > 0:
        per_bin = per_bin / n
    w = torch.where(inside, per_bin[idx], torch.zeros_like(per_bin[idx]))
    return w


def ghm_c(
    logits: Tensor,
    targets: Tensor,
    bins: int = 30,
    momentum: float = 0.0,
    valid: Tensor | None = None,
    acc_counts: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Gradient Harmonizing classification loss, GHM-C (Li et al., AAAI 2019, Eqs. 3-5, 8).

    Gradient norm ``g = |sigmoid(x) - y|`` per element, binned into ``bins`` equal bins of [0, 1]
    (float32 edges, last edge 1 + 1e-6: :func:`ghm_edges`); weights from :func:`ghm_bin_weights` (``tot / (n R_i)``, or
    the moving count with ``momentum``, state in ``acc_counts``: a float tensor of length ``bins`` starting at zeros,
    updated in place; see :class:`GHMC`). Loss ``w_i * BCE_i``; "mean" divides the weighted sum by ``tot`` (the number
    of valid elements), exactly mmdetection's ``GHMC``. Defaults: 30 bins (the paper's setting); momentum 0 here, 0.75
    in :class:`GHMC` (the paper's setting).
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    targets = targets.to(logits.dtype)
    if valid is None:
        valid = torch.ones_like(logits, dtype=torch.bool)
    else:
        valid = valid.to(torch.bool).expand_as(logits)
    with torch.no_grad():
        g = (torch.sigmoid(logits) - targets).abs()
        weight = ghm_bin_weights(g, valid, ghm_edges(bins, None, g.device), momentum, acc_counts).to(logits.dtype)
        tot = max(int(valid.sum()), 1)
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight
    if reduction == "mean":
        return loss.sum() / tot
    return reduce_loss(loss, reduction)


class GHMC(torch.nn.Module):
    """Stateful GHM-C with momentum-smoothed bin counts (buffer ``acc_counts``, starts at 0); see :func:`ghm_c`.

    Defaults are the paper's (Li et al., AAAI 2019, §4): 30 bins, momentum 0.75.
    """

    def __init__(self, bins: int = 30, momentum: float = 0.75):
        super().__init__()
        self.bins, self.momentum = bins, momentum
        self.register_buffer("acc_counts", torch.zeros(bins, dtype=torch.float64))

    def forward(self, logits: Tensor, targets: Tensor, valid: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """GHM-C loss of one batch, updating the running bin counts."""
        return ghm_c(logits, targets, self.bins, self.momentum, valid, self.acc_counts, reduction)
