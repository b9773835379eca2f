"""Classification losses against foreground-background and hard/easy imbalance.

Conventions: ``logits`` are raw scores; sigmoid losses take ``targets`` of the same shape
(one-hot or soft labels in [0, 1]); softmax losses take integer ``labels``. ``reduction`` is
"none" (element-wise), "mean" or "sum". Formulas are quoted from the survey (seed 000,
§4.1.2, Eqs. 2-6) and the papers named in each docstring.
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
    """Binary cross-entropy on sigmoid scores (survey seed 000, Eq. 2, one binary task per class).

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
    """Softmax cross-entropy ``-log p_y`` (survey seed 000, Eq. 2 with the softmax probability).

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
    """Sigmoid focal loss (Lin et al., ICCV 2017; survey seed 000, Eq. 3).

    ``FL = -α_t (1 - p_t)^γ log p_t`` with ``p_t = p y + (1 - p)(1 - y)`` and
    ``α_t = α y + (1 - α)(1 - y)``; a negative ``alpha`` disables α-weighting. Defaults
    α = 0.25, γ = 2 (RetinaNet). Same behaviour and numbers as
    ``torchvision.ops.sigmoid_focal_loss``.
    """
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
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
    """IoU-balanced classification loss (Wu & Li; seed 004, Eqs. 1-2), sigmoid form.

    ``L = sum_{i in Pos} w_i CE_i + sum_{i in Neg} CE_i`` with
    ``w_i = iou_i^η * sum_{Pos} CE / sum_{Pos} iou^η CE`` (Eq. 2): positives with a better
    regressed box are up-weighted while the positives' total loss is unchanged. Positives are the
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
        scale = num / den if float(den) > 0 else torch.ones_like(num)
        weight = torch.where(pos, raw * scale, torch.ones_like(raw))
    return reduce_loss(base * weight, reduction)


def ghm_c(
    logits: Tensor,
    targets: Tensor,
    bins: int = 10,
    momentum: float = 0.0,
    valid: Tensor | None = None,
    acc_counts: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Gradient Harmonizing classification loss, GHM-C (Li et al., AAAI 2019; survey seed 000, Eq. 4).

    Gradient norm ``g = |sigmoid(x) - y|`` per element, binned into ``bins`` equal bins of [0, 1];
    weight ``w_i = m / (n G_i)`` with ``G_i`` the number of elements in i's bin, ``m`` the number
    of valid elements and ``n`` the number of non-empty bins (survey Eq. 4 normalised so weights
    average to one). Loss ``w_i * BCE_i``; "mean" divides the weighted sum by ``m``.

    ``momentum`` > 0 smooths the bin counts across calls (``G <- μ G_prev + (1 - μ) G``) in
    ``acc_counts`` (a float tensor of length ``bins`` updated in place; see :class:`GHMC`).
    Defaults: 10 bins, momentum 0. ``valid`` (bool, broadcastable) masks elements out.
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
        idx = (g * bins).floor().clamp(max=bins - 1).long()
        m = int(valid.sum())
        counts = torch.bincount(idx[valid], minlength=bins).to(logits.dtype)
        if momentum > 0:
            if acc_counts is None:
                raise ValueError("momentum > 0 needs an acc_counts buffer (use the GHMC module)")
            first = bool((acc_counts == 0).all())
            new = counts if first else momentum * acc_counts.to(counts.dtype) + (1 - momentum) * counts
            acc_counts.copy_(new.to(acc_counts.dtype))
            counts = new
        nonempty = int((counts > 0).sum())
        per_bin = torch.where(counts > 0, m / (nonempty * counts.clamp(min=1e-12)), torch.zeros_like(counts))
        weight = torch.where(valid, per_bin[idx], torch.zeros_like(g))
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * weight
    if reduction == "mean":
        return loss.sum() / max(m, 1)
    return reduce_loss(loss, reduction)


class GHMC(torch.nn.Module):
    """Stateful GHM-C with momentum-smoothed bin counts (buffer ``acc_counts``); see :func:`ghm_c`."""

    def __init__(self, bins: int = 10, momentum: float = 0.75):
        super().__init__()
        self.bins, self.momentum = bins, momentum
        self.register_buffer("acc_counts", torch.zeros(bins))

    def forward(self, logits: Tensor, targets: Tensor, valid: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """GHM-C loss of one batch, updating the running bin counts."""
        return ghm_c(logits, targets, self.bins, self.momentum, valid, self.acc_counts, reduction)
