"""Box conversions and the IoU family, in torch, shared by the anchor engine and the losses.

Boxes are ``(x1, y1, x2, y2)`` unless a name says otherwise. Pairwise functions return an
``(N, M)`` matrix (like ``torchvision.ops.box_iou``); ``*_aligned`` functions compare
``boxes1[i]`` with ``boxes2[i]`` and return ``(N,)``.

Formulas (Oksuz et al., Imbalance Problems in Object Detection, TPAMI 2021, §6.2, Eqs. 14-22):

* IoU(B, B̄) = |B ∩ B̄| / |B ∪ B̄|
* GIoU = IoU - |C \\ (B ∪ B̄)| / |C|, C the smallest enclosing box (Rezatofighi et al. 2019)
* DIoU = IoU - ρ²(b, b̄) / c², ρ the centre distance, c the enclosing box diagonal (Zheng et al. 2020)
* CIoU = DIoU - α v, v = 4/π² (atan(w̄/h̄) - atan(w/h))², α = [IoU > 0.5] v / ((1 - IoU) + v)

The ``*_aligned`` functions (the losses' form) use mmdetection 3.3.0's arithmetic and eps placement,
held to its own output by ``tests/test_losses_oracle.py``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def box_area(boxes: Tensor) -> Tensor:
    """Area ``(x2 - x1) * (y2 - y1)`` of each box (as ``torchvision.ops.box_area``)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _pairwise_inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    area1 = box_area(boxes1)
    area2 = box_area(boxes2)
    lt = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    rb = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - inter
    return inter, union


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU, ``(N, M)``; same arithmetic as ``torchvision.ops.box_iou``."""
    inter, union = _pairwise_inter_union(boxes1, boxes2)
    return inter / union


def _aligned_terms(boxes1: Tensor, boxes2: Tensor):
    x1, y1, x2, y2 = boxes1.unbind(-1)
    X1, Y1, X2, Y2 = boxes2.unbind(-1)
    iw = (torch.min(x2, X2) - torch.max(x1, X1)).clamp(min=0)
    ih = (torch.min(y2, Y2) - torch.max(y1, Y1)).clamp(min=0)
    inter = iw * ih
    union = (x2 - x1) * (y2 - y1) + (X2 - X1) * (Y2 - Y1) - inter
    cx1, cy1 = torch.min(x1, X1), torch.min(y1, Y1)
    cx2, cy2 = torch.max(x2, X2), torch.max(y2, Y2)
    return inter, union, (cx1, cy1, cx2, cy2)


def iou_aligned(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-6) -> Tensor:
    """IoU of ``boxes1[i]`` with ``boxes2[i]``, ``(N,)``: ``inter / max(union, eps)``.

    The arithmetic of mmdetection 3.3.0's ``bbox_overlaps(..., is_aligned=True)``
    (mmdet/structures/bbox/bbox_overlaps.py; eps 1e-6 there too).
    """
    inter, union, _ = _aligned_terms(boxes1, boxes2)
    return inter / union.clamp(min=eps)


def giou_aligned(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """GIoU of ``boxes1[i]`` with ``boxes2[i]`` (survey Eq. 19), ``(N,)``.

    mmdetection 3.3.0's ``bbox_overlaps(mode="giou", is_aligned=True, eps)`` as ``giou_loss`` calls
    it: union and enclosing area are each raised to at least ``eps`` (``max``, not added).
    """
    inter, union, (cx1, cy1, cx2, cy2) = _aligned_terms(boxes1, boxes2)
    union = union.clamp(min=eps)
    enclosing = ((cx2 - cx1).clamp(min=0) * (cy2 - cy1).clamp(min=0)).clamp(min=eps)
    return inter / union - (enclosing - union) / enclosing


def _iou_rho_c2(boxes1: Tensor, boxes2: Tensor, eps: float):
    """IoU ``inter / (union + eps)``, squared centre distance and squared enclosing diagonal ``+ eps``
    in the operation order of mmdetection 3.3.0's ``diou_loss`` / ``ciou_loss`` (mmdet/models/losses/iou_loss.py)."""
    inter, union, (cx1, cy1, cx2, cy2) = _aligned_terms(boxes1, boxes2)
    iou = inter / (union + eps)
    cw, ch = (cx2 - cx1).clamp(min=0), (cy2 - cy1).clamp(min=0)
    c2 = cw**2 + ch**2 + eps
    left = ((boxes2[..., 0] + boxes2[..., 2]) - (boxes1[..., 0] + boxes1[..., 2])) ** 2 / 4
    right = ((boxes2[..., 1] + boxes2[..., 3]) - (boxes1[..., 1] + boxes1[..., 3])) ** 2 / 4
    return iou, left + right, c2


def diou_aligned(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """DIoU of ``boxes1[i]`` with ``boxes2[i]`` (survey Eq. 21): IoU - ρ²/c², ``(N,)`` (mmdetection's arithmetic)."""
    iou, rho2, c2 = _iou_rho_c2(boxes1, boxes2, eps)
    return iou - rho2 / c2


def ciou_aligned(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """CIoU of ``boxes1[i]`` with ``boxes2[i]`` (survey Eq. 22): DIoU - α v, ``(N,)``, as
    mmdetection 3.3.0's ``ciou_loss``.

    ``boxes1`` are predictions, ``boxes2`` targets; ``v = 4/π² (atan(w̄/(h̄ + eps)) - atan(w/(h + eps)))²``
    and ``α = [IoU > 0.5] v / (1 - IoU + v)``, a constant in the backward pass (Zheng et al., AAAI 2020,
    Eq. 11 and its released code, which switch α off at IoU <= 0.5). Where ``1 - IoU + v`` is 0
    (identical boxes whose IoU rounds to 1, e.g. in float32) mmdetection gives NaN; α is 0 here.
    torchvision's ``complete_box_iou_loss`` uses ``α = v / (1 - IoU + v + eps)`` for every IoU instead.
    """
    iou, rho2, c2 = _iou_rho_c2(boxes1, boxes2, eps)
    w1, h1 = boxes1[..., 2] - boxes1[..., 0], boxes1[..., 3] - boxes1[..., 1] + eps
    w2, h2 = boxes2[..., 2] - boxes2[..., 0], boxes2[..., 3] - boxes2[..., 1] + eps
    v = (4 / math.pi**2) * torch.pow(torch.atan(w2 / h2) - torch.atan(w1 / h1), 2)
    with torch.no_grad():
        denom = 1 - iou + v
        # identical boxes in float32 give 0 / 0 (NaN in mmdetection); α v is 0 there either way
        alpha = torch.where(
            denom > 0, (iou > 0.5).to(v.dtype) * v / denom.clamp(min=torch.finfo(v.dtype).tiny), torch.zeros_like(v)
        )
    return iou - (rho2 / c2 + alpha * v)
