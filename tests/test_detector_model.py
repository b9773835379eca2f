"""Compact detector: shapes, head initialisation, NMS against a plain greedy reference, post-processing."""

from __future__ import annotations

import math

import pytest
import torch

from imbalance_cli.detector.model import Detector, ModelConfig, PostProcess, batched_nms, nms, postprocess


def _iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _greedy(boxes, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    keep = []
    for i in order:
        if all(_iou(boxes[i], boxes[k]) <= thr for k in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_plain_greedy(seed):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(60, 2, generator=g) * 50
    wh = torch.rand(60, 2, generator=g) * 30 + 2
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(60, generator=g)
    keep = nms(boxes, scores, 0.5).tolist()
    assert keep == _greedy(boxes.tolist(), scores.tolist(), 0.5)


def test_batched_nms_is_per_class():
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10.5]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    classes = torch.tensor([0, 1, 0])
    keep = batched_nms(boxes, scores, classes, 0.5).tolist()
    assert keep == [0, 1]  # box 2 is suppressed by box 0 (same class), box 1 survives (other class)


@pytest.mark.slow
def test_model_shapes_and_prior_init():
    torch.manual_seed(0)
    m = Detector(num_logits=5, num_anchors=9, head="sigmoid", config=ModelConfig(num_levels=3)).eval()
    logits, deltas, sizes = m(torch.zeros(2, 3, 64, 96))
    assert sizes == [(8, 12), (4, 6), (2, 3)]
    A = 9 * sum(h * w for h, w in sizes)
    assert logits.shape == (2, A, 5) and deltas.shape == (2, A, 4)
    # with a zero image every logit equals the bias only up to the conv response; the bias itself is -log(99)
    assert torch.allclose(m.cls_out.bias, torch.full_like(m.cls_out.bias, -math.log(99)))
    s = Detector(num_logits=5, num_anchors=1, head="softmax")
    p = torch.softmax(s.cls_out.bias.detach(), 0)
    assert float(p[:4].sum()) == pytest.approx(0.01)  # total foreground prior 0.01, split evenly
    assert p[:4].allclose(p[0].expand(4))
    five = Detector(num_logits=3, num_anchors=1, config=ModelConfig(num_levels=5)).eval()
    _, _, sizes5 = five(torch.zeros(1, 3, 128, 128))
    assert sizes5 == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


def test_postprocess_decodes_thresholds_and_clips():
    anchors = torch.tensor([[0, 0, 10, 10], [20, 20, 40, 40], [20, 20, 40, 40.0]])
    deltas = torch.zeros(3, 4)
    deltas[1, 0] = 0.1  # shift by 0.1 * 20 = 2 px
    scores = torch.tensor([[0.01, 0.02], [0.9, 0.0], [0.0, 0.6]])
    b, s, c = postprocess(scores, deltas, anchors, [3], (30, 30), PostProcess(score_threshold=0.05))
    assert s.tolist() == pytest.approx([0.9, 0.6])
    assert c.tolist() == [0, 1]
    assert b[0].tolist() == pytest.approx([22, 20, 30, 30])  # clipped to the 30x30 image
    assert b[1].tolist() == pytest.approx([20, 20, 30, 30])
