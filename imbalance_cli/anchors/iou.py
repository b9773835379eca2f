"""IoU kernels with torchvision's ``box_iou`` arithmetic, in float32.

``IoU(g, a) = inter / (area_g + area_a - inter)`` with ``inter = max(0, min(x2) - max(x1)) *
max(0, min(y2) - max(y1))``, every operation in float32 in this order, as
``torchvision.ops.box_iou`` computes it (pytorch/vision ``torchvision/ops/boxes.py``,
``_box_inter_union``). Both engines use these two functions so the labels agree to the bit.
"""

from __future__ import annotations

import numpy as np

F32 = np.float32


def box_iou_batched(boxes, anchors):
    """IoU (B, M, C) of boxes (B, M, 4) with anchors (C, 4) as torch tensors.

    Per coordinate axis (no (B, M, C, 2) temporaries); every element sees the same float32
    operations as ``box_iou``: ``inter / (area_box + area_anchor - inter)``.
    """
    area1 = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area2 = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    b = boxes[:, :, None, :]
    iw = (b[..., 2].minimum(anchors[:, 2]) - b[..., 0].maximum(anchors[:, 0])).clamp_(min=0)
    ih = (b[..., 3].minimum(anchors[:, 3]) - b[..., 1].maximum(anchors[:, 1])).clamp_(min=0)
    inter = iw.mul_(ih)
    union = area1[:, :, None] + area2[None, None, :] - inter
    return inter.div_(union)


def aligned_iou32(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Element-wise float32 IoU of boxes ``g`` (N, 4) with anchors ``a`` (N, 4), ``box_iou`` arithmetic."""
    area1 = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
    area2 = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    w = np.minimum(g[:, 2], a[:, 2]) - np.maximum(g[:, 0], a[:, 0])
    h = np.minimum(g[:, 3], a[:, 3]) - np.maximum(g[:, 1], a[:, 1])
    inter = np.maximum(w, F32(0)) * np.maximum(h, F32(0))
    return inter / (area1 + area2 - inter)
