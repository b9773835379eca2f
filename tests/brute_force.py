"""A detector's anchor labels computed the straightforward way, as the reference the engines are held to.

Every anchor against every box of one image (float32 IoU, torchvision's ``box_iou`` arithmetic), then
torchvision's ``Matcher(high, low, allow_low_quality_matches=True)`` rule written out here: an anchor takes
its best box (first on ties), IoU >= ``hi`` positive, [``lo``, ``hi``) ignored (-2), below ``lo`` negative
(-1); then every anchor tying a box's best IoU becomes positive with its own best box. Used by
``tests/test_anchors_stats.py`` and timed by ``benchmarks/anchors.py`` as the baseline.
"""

import torch


def pairwise_iou(boxes, anchors):
    """(boxes x anchors) IoU of xyxy tensors, every pair (torchvision's ``box_iou`` arithmetic, written here)."""
    area_b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_a = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    lt = torch.max(boxes[:, None, :2], anchors[None, :, :2])
    rb = torch.min(boxes[:, None, 2:], anchors[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_b[:, None] + area_a[None, :] - inter)


def brute_force_match(anchors, boxes, hi=0.5, lo=0.4):
    """``(labels (A,), iou (M, A), best IoU per box (M,))`` for one image's anchors (A, 4) and boxes (M, 4)."""
    iou = pairwise_iou(boxes, anchors)
    vals, idx = iou.max(dim=0)
    m = idx.clone()
    m[vals < lo] = -1
    m[(vals >= lo) & (vals < hi)] = -2
    best = iou.max(dim=1).values
    _, pred = torch.where(iou == best[:, None])
    m[pred] = idx[pred]
    return m, iou, best
