"""Box regression losses (Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI 2021, §6.2, Eqs. 9-22;
Wu et al., IoU-balanced Loss Functions for Single-stage Object Detection, PRL 2022, Eqs. 3-5).

Boxes are ``(x1, y1, x2, y2)``. The ℓ1-family losses work on any tensors (coordinates or the
``(dx, dy, dw, dh)`` deltas of :func:`encode_deltas`, the form the papers use); IoU-family losses
take boxes. ``reduction`` is "none" (element-wise), "mean" or "sum".
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from imbalance_cli.boxes import ciou_aligned, diou_aligned, giou_aligned, iou_aligned
from imbalance_cli.losses.classification import ghm_bin_weights, ghm_edges, reduce_loss

__all__ = [
    "encode_deltas",
    "decode_deltas",
    "l1",
    "smooth_l1",
    "giou_loss",
    "diou_loss",
    "ciou_loss",
    "balanced_l1",
    "iou_loss",
    "bounded_iou",
    "iou_balanced_l1",
]

_DELTA_CLAMP = math.log(1000.0 / 16)


def encode_deltas(
    anchors: Tensor, boxes: Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """R-CNN box deltas of ``boxes`` relative to ``anchors`` (both xyxy, same shape ``(..., 4)``).

    ``dx = wx (x - xa) / wa``, ``dy = wy (y - ya) / ha``, ``dw = ww log(w / wa)``,
    ``dh = wh log(h / ha)`` with centres ``x, y`` and sizes ``w, h`` (Girshick et al. 2014).
    """
    wx, wy, ww, wh = weights
    aw = anchors[..., 2] - anchors[..., 0]
    ah = anchors[..., 3] - anchors[..., 1]
    ax = anchors[..., 0] + 0.5 * aw
    ay = anchors[..., 1] + 0.5 * ah
    bw = boxes[..., 2] - boxes[..., 0]
    bh = boxes[..., 3] - boxes[..., 1]
    bx = boxes[..., 0] + 0.5 * bw
    by = boxes[..., 1] + 0.5 * bh
    return torch.stack(
        (wx * (bx - ax) / aw, wy * (by - ay) / ah, ww * torch.log(bw / aw), wh * torch.log(bh / ah)), dim=-1
    )


def decode_deltas(
    anchors: Tensor, deltas: Tensor, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
) -> Tensor:
    """Inverse of :func:`encode_deltas`: xyxy boxes from ``anchors`` and ``deltas``.

    ``dw, dh`` are clamped at ``log(1000/16)`` (as Detectron) so an untrained head cannot overflow.
    """
    wx, wy, ww, wh = weights
    aw = anchors[..., 2] - anchors[..., 0]
    ah = anchors[..., 3] - anchors[..., 1]
    ax = anchors[..., 0] + 0.5 * aw
    ay = anchors[..., 1] + 0.5 * ah
    dx, dy = deltas[..., 0] / wx, deltas[..., 1] / wy
    dw = (deltas[..., 2] / ww).clamp(max=_DELTA_CLAMP)
    dh = (deltas[..., 3] / wh).clamp(max=_DELTA_CLAMP)
    cx, cy = ax + dx * aw, ay + dy * ah
    w, h = aw * torch.exp(dw), ah * torch.exp(dh)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def l1(pred: Tensor, target: Tensor, reduction: str = "none") -> Tensor:
    """ℓ1 loss ``|x|`` with ``x = pred - target`` (Oksuz et al., Imbalance Problems in Object Detection: A Review, TPAMI
    2021, §6.2, Eq. 8 family), element-wise."""
    return reduce_loss((pred - target).abs(), reduction)


def smooth_l1(pred: Tensor, target: Tensor, beta: float = 1.0, reduction: str = "none") -> Tensor:
    """Smooth ℓ1 (Girshick, Fast R-CNN 2015; Oksuz et al., Imbalance Problems in Object Detection: A Review,
    TPAMI 2021, Eq. 9), element-wise.

    ``0.5 x² / β`` if ``|x| < β`` else ``|x| - 0.5 β``, ``x = pred - target``; ``β = 0`` is ℓ1.
    Default β = 1 (as ``torch.nn.functional.smooth_l1_loss``).
    """
    x = (pred - target).abs()
    if beta <= 0:
        return reduce_loss(x, reduction)
    loss = torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)
    return reduce_loss(loss, reduction)


def giou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """GIoU loss ``1 - GIoU`` (Rezatofighi et al. 2019; Oksuz et al., Imbalance Problems in Object Detection: A Review,
    TPAMI 2021, Eqs. 19-20), ``(...,)``.

    Equals mmdetection 3.3.0's ``giou_loss`` (eps 1e-7 as a floor under union and enclosing area,
    :func:`~imbalance_cli.boxes.giou_aligned`); ``boxes1`` predictions, ``boxes2`` targets, both
    xyxy ``(..., 4)``. (torchvision adds eps instead: different only for boxes of area ~1e-7.)
    """
    return reduce_loss(1 - giou_aligned(boxes1, boxes2, eps), reduction)


def diou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """DIoU loss ``1 - IoU + ρ²/c²`` (Zheng et al. 2020; Oksuz et al., Imbalance Problems in Object Detection:
    A Review, TPAMI 2021, Eq. 21).

    Equals mmdetection 3.3.0's ``diou_loss`` (eps 1e-7 added to union and enclosing diagonal).
    """
    return reduce_loss(1 - diou_aligned(boxes1, boxes2, eps), reduction)


def ciou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """CIoU loss ``1 - IoU + ρ²/c² + α v`` (Zheng et al. 2020; Oksuz et al., Imbalance Problems in Object Detection:
    A Review, TPAMI 2021, Eq. 22).

    ``v = 4/π² (atan(w̄/h̄) - atan(w/h))²``, ``α = [IoU > 0.5] v / ((1 - IoU) + v)`` held constant
    in the backward pass, and the CIoU term clamped to [-1, 1] before ``1 - CIoU``: mmdetection
    3.3.0's ``ciou_loss`` (eps 1e-7; :func:`~imbalance_cli.boxes.ciou_aligned`). torchvision's
    ``complete_box_iou_loss`` keeps α at every IoU and does not clamp.
    """
    return reduce_loss(1 - ciou_aligned(boxes1, boxes2, eps).clamp(min=-1.0, max=1.0), reduction)


def balanced_l1(
    pred: Tensor, target: Tensor, alpha: float = 0.5, gamma: float = 1.5, beta: float = 1.0, reduction: str = "none"
) -> Tensor:
    """Balanced ℓ1 loss (Pang et al., Libra R-CNN 2019; Oksuz et al., Imbalance Problems in Object Detection: A Review,
    TPAMI 2021, Eqs. 10-12), element-wise.

    Designed from its gradient ``α ln(b|x| + 1)`` for ``|x| < 1`` and ``γ`` beyond (Eq. 10),
    ``x = pred - target``, with ``α ln(b + 1) = γ`` (Eq. 12); integrated (Eq. 11) and written for a
    threshold β as mmdetection 3.3.0's ``balanced_l1_loss`` (mmdet/models/losses/balanced_l1_loss.py)::

        L(x) = α/b (b|x| + 1) ln(b|x|/β + 1) - α|x|   if |x| < β
        L(x) = γ|x| + γ/b - αβ                          otherwise

    Defaults α = 0.5, γ = 1.5, β = 1 (the paper's; mmdetection's Libra RetinaNet config uses
    β = 0.11, its Libra Faster R-CNN β = 1). The value is continuous at ``|x| = β`` for every β
    (``α ln(b + 1) = γ``); the gradient is continuous there only at β = 1 and jumps otherwise.
    """
    if alpha <= 0 or gamma <= 0 or beta <= 0:
        raise ValueError("balanced_l1 needs alpha, gamma, beta > 0")
    x = (pred - target).abs()
    b = math.exp(gamma / alpha) - 1.0
    inner = alpha / b * (b * x + 1) * torch.log(b * x / beta + 1) - alpha * x
    outer = gamma * x + gamma / b - alpha * beta
    return reduce_loss(torch.where(x < beta, inner, outer), reduction)


def iou_loss(boxes1: Tensor, boxes2: Tensor, mode: str = "log", reduction: str = "none", eps: float = 1e-6) -> Tensor:
    """IoU loss: ``-ln IoU`` (Yu et al. 2016, UnitBox; Oksuz et al., Imbalance Problems in Object Detection: A Review,
    TPAMI 2021, Eq. 14), ``1 - IoU`` (``mode="linear"``) or ``1 - IoU²`` (``"square"``).

    ``boxes1`` predictions, ``boxes2`` targets (xyxy, ``(..., 4)``). As mmdetection 3.3.0's
    ``iou_loss``: IoU ``= inter / max(union, 1e-6)`` (``bbox_overlaps``), then clamped at ``eps``
    (1e-6), so disjoint and touching boxes give ``-ln 1e-6 = 13.8155`` (or ``1 - 1e-6``) and
    zero gradient in every mode.
    """
    iou = iou_aligned(boxes1, boxes2).clamp(min=eps)
    if mode == "log":
        loss = -torch.log(iou)
    elif mode == "linear":
        loss = 1.0 - iou
    elif mode == "square":
        loss = 1.0 - iou**2
    else:
        raise ValueError(f"mode must be 'log', 'linear' or 'square', got {mode!r}")
    return reduce_loss(loss, reduction)


def _cxcywh(boxes: Tensor):
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def bounded_iou(
    boxes1: Tensor, boxes2: Tensor, beta: float = 0.2, reduction: str = "none", eps: float = 1e-3
) -> Tensor:
    """Bounded IoU loss (Tychsen-Smith & Petersson 2018; Oksuz et al., Imbalance Problems in Object Detection: A Review,
    TPAMI 2021, Eqs. 15-17), ``(..., 4)``.

    For predictions ``boxes1`` and targets ``boxes2`` (xyxy), per parameter of ``(cx, cy, w, h)``:
    ``IoU_B(cx) = max(0, (w - 2|Δcx|) / (w + 2|Δcx| + eps))`` (Eq. 16, w the target width; likewise
    cy with h) and ``IoU_B(w) = min(w / (w̄ + eps), w̄ / (w + eps))`` (Eq. 17), and the loss is
    ``smooth_l1(1 - IoU_B, β)`` per term (Eq. 15). Returns the four terms in the last dimension;
    sum them for a per-box loss. β = 0.2, eps = 1e-3 and the targets held constant: mmdetection
    3.3.0's ``bounded_iou_loss`` (the survey writes Eq. 15 with a factor 2 that this code leaves out).
    """
    pcx, pcy, pw, ph = _cxcywh(boxes1)
    with torch.no_grad():
        tcx, tcy, tw, th = _cxcywh(boxes2)
    dx, dy = (tcx - pcx).abs(), (tcy - pcy).abs()
    iou_x = torch.max((tw - 2 * dx) / (tw + 2 * dx + eps), torch.zeros_like(dx))
    iou_y = torch.max((th - 2 * dy) / (th + 2 * dy + eps), torch.zeros_like(dy))
    iou_w = torch.min(tw / (pw + eps), pw / (tw + eps))
    iou_h = torch.min(th / (ph + eps), ph / (th + eps))
    err = 1.0 - torch.stack((iou_x, iou_y, iou_w, iou_h), dim=-1)
    return reduce_loss(smooth_l1(err, torch.zeros_like(err), beta=beta), reduction)


def iou_balanced_l1(
    pred: Tensor,
    target: Tensor,
    ious: Tensor,
    lam: float = 1.5,
    w_loc: float | None = None,
    beta: float = 1.0 / 9,
    reduction: str = "none",
) -> Tensor:
    """IoU-balanced smooth ℓ1 localisation loss (Wu et al., IoU-balanced Loss Functions for Single-stage Object
    Detection, PRL 2022, Eqs. 3-5), element-wise ``(..., 4)``.

    ``pred``/``target`` are the positives' ``(dx, dy, dw, dh)`` deltas ``(P, 4)``; ``ious`` ``(P,)``
    the IoU of each regressed box with its ground truth, used as a constant (no gradient flows
    through the weight, §3.2). Weight per box: ``w_loc * iou^λ`` (Eq. 4) when ``w_loc`` is given
    (the paper tunes it so the loss sum is unchanged at the first step; Table 4: λ = 1.5 ->
    w_loc = 3.049 for RetinaNet), else the normalised form ``iou^λ * sum SL1 / sum iou^λ SL1``
    (Eq. 5). λ = 1.5, smooth-ℓ1 β = 1/9 (δ = 0.111 in the paper).
    """
    base = smooth_l1(pred, target, beta=beta)
    with torch.no_grad():
        raw = ious.detach().to(base.dtype).clamp(min=0.0) ** lam
        raw = raw.reshape(raw.shape + (1,) * (base.dim() - raw.dim()))
        if w_loc is not None:
            weight = w_loc * raw
        else:
            den = (raw * base.detach()).sum()
            weight = raw * (base.detach().sum() / den) if float(den) > 0 else torch.ones_like(raw)
    return reduce_loss(base * weight, reduction)


def ghm_r(
    pred: Tensor,
    target: Tensor,
    mu: float = 0.02,
    bins: int = 10,
    momentum: float = 0.0,
    valid: Tensor | None = None,
    acc_counts: Tensor | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Gradient Harmonizing regression loss, GHM-R (Li et al., "Gradient Harmonized Single-stage
    Detector", AAAI 2019, Eqs. 9-12).

    On the regression deltas ``d = pred - target`` (element-wise, e.g. ``(P, 4)``) the
    authentic smooth ℓ1 loss ``ASL1(d) = sqrt(d² + μ²) - μ`` (Eq. 9, μ = 0.02) has gradient
    norm ``gr = |d| / sqrt(d² + μ²)`` in [0, 1) (Eq. 10); elements are binned by ``gr`` into
    ``bins`` equal bins (float32 edges, last edge 1000, as mmdetection's ``GHMR``) and weighted by the gradient
    density (:func:`ghm_bin_weights`: ``tot / (n R_i)`` or the moving count with ``momentum``,
    state in ``acc_counts``, see :class:`GHMR`). "mean" divides the weighted sum by ``tot``, the
    number of valid elements (mmdetection's ``GHMR`` with unit label weights).
    """
    if mu <= 0:
        raise ValueError("mu must be > 0")
    if bins < 1:
        raise ValueError("bins must be >= 1")
    diff = pred - target
    loss = torch.sqrt(diff * diff + mu * mu) - mu
    if valid is None:
        valid = torch.ones_like(diff, dtype=torch.bool)
    else:
        valid = valid.to(torch.bool).expand_as(diff)
    with torch.no_grad():
        g = (diff / torch.sqrt(mu * mu + diff * diff)).abs()
        weight = ghm_bin_weights(g, valid, ghm_edges(bins, 1e3, g.device), momentum, acc_counts).to(loss.dtype)
        tot = max(int(valid.sum()), 1)
    loss = loss * weight
    if reduction == "mean":
        return loss.sum() / tot
    return reduce_loss(loss, reduction)


class GHMR(torch.nn.Module):
    """Stateful GHM-R with momentum-smoothed bin counts (buffer ``acc_counts``, starts at 0); see :func:`ghm_r`.

    Defaults μ = 0.02, 10 bins (the paper's), momentum 0.7 (mmdetection's GHM RetinaNet config).
    """

    def __init__(self, mu: float = 0.02, bins: int = 10, momentum: float = 0.7):
        super().__init__()
        self.mu, self.bins, self.momentum = mu, bins, momentum
        self.register_buffer("acc_counts", torch.zeros(bins, dtype=torch.float64))

    def forward(self, pred: Tensor, target: Tensor, valid: Tensor | None = None, reduction: str = "mean") -> Tensor:
        """GHM-R loss of one batch, updating the running bin counts."""
        return ghm_r(pred, target, self.mu, self.bins, self.momentum, valid, self.acc_counts, reduction)
