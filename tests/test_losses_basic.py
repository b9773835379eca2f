"""Basic classification/regression losses against independent numpy formulas and hand values."""

import math

import numpy as np
import pytest
import torch

from imbalance_cli.losses import (
    CLASSIFICATION_LOSSES,
    REGRESSION_LOSSES,
    ciou_loss,
    decode_deltas,
    diou_loss,
    encode_deltas,
    focal_loss,
    giou_loss,
    l1,
    sigmoid_ce,
    smooth_l1,
    softmax_ce,
)


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _rand(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64)


def test_sigmoid_ce_matches_numpy():
    x = _rand((5, 4)) * 3
    t = (_rand((5, 4), 1) > 0).double()
    p = _np_sigmoid(x.numpy())
    expect = -(t.numpy() * np.log(p) + (1 - t.numpy()) * np.log(1 - p))
    np.testing.assert_allclose(sigmoid_ce(x, t).numpy(), expect, rtol=1e-10)
    np.testing.assert_allclose(sigmoid_ce(x, t, reduction="sum").item(), expect.sum(), rtol=1e-10)
    w = torch.arange(4, dtype=torch.float64)
    np.testing.assert_allclose(sigmoid_ce(x, t, weight=w, reduction="mean").item(), (expect * np.arange(4)).mean())


def test_softmax_ce_matches_numpy_and_ignores():
    x = _rand((6, 5))
    y = torch.tensor([0, 4, 2, -1, 1, 3])
    z = x.numpy()
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    rows = [-logp[i, c] for i, c in enumerate(y.tolist()) if c >= 0]
    got = softmax_ce(x, y)
    assert got[3].item() == 0.0
    np.testing.assert_allclose(softmax_ce(x, y, reduction="mean").item(), np.mean(rows), rtol=1e-12)
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=torch.float64)
    expect_w = sum(-logp[i, c] * (c + 1) for i, c in enumerate(y.tolist()) if c >= 0)
    np.testing.assert_allclose(softmax_ce(x, y, weight=w, reduction="sum").item(), expect_w, rtol=1e-12)


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 2.0), (0.5, 0.0), (0.25, 1.5)])
def test_focal_loss_matches_torchvision_formula(alpha, gamma):
    # torchvision.ops.sigmoid_focal_loss, written out in numpy
    x = _rand((7, 3), 2).numpy() * 4
    t = np.random.default_rng(0).random((7, 3))
    t[:3] = t[:3] > 0.5  # hard and soft targets
    p = _np_sigmoid(x)
    ce = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    expect = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        expect = (alpha * t + (1 - alpha) * (1 - t)) * expect
    got = focal_loss(torch.from_numpy(x), torch.from_numpy(t), alpha=alpha, gamma=gamma)
    np.testing.assert_allclose(got.numpy(), expect, rtol=1e-9)
    np.testing.assert_allclose(
        focal_loss(torch.from_numpy(x), torch.from_numpy(t), alpha, gamma, reduction="mean").item(), expect.mean()
    )


@pytest.mark.slow
def test_focal_gamma0_is_ce_and_bad_reduction():
    x = _rand((3, 3))
    t = (x > 0).double()
    torch.testing.assert_close(focal_loss(x, t, alpha=-1, gamma=0), sigmoid_ce(x, t))
    with pytest.raises(ValueError, match="reduction"):
        focal_loss(x, t, reduction="avg")


def test_gradcheck_classification():
    x = _rand((4, 3)).requires_grad_()
    t = (_rand((4, 3), 5) > 0).double()
    assert torch.autograd.gradcheck(lambda z: focal_loss(z, t, reduction="sum"), (x,))
    assert torch.autograd.gradcheck(lambda z: softmax_ce(z, torch.tensor([0, 1, 2, -1]), reduction="mean"), (x,))


def test_smooth_l1_and_l1_by_hand():
    p = torch.tensor([0.0, 0.5, 2.0, -3.0])
    t = torch.zeros(4)
    # beta = 1: 0.5 x^2 inside, |x| - 0.5 outside
    assert smooth_l1(p, t).tolist() == [0.0, 0.125, 1.5, 2.5]
    assert smooth_l1(p, t, beta=0.0).tolist() == [0.0, 0.5, 2.0, 3.0]
    assert smooth_l1(p, t, beta=4.0).tolist() == [0.0, 0.03125, 0.5, 1.125]
    assert l1(p, t, reduction="sum").item() == 5.5
    torch.testing.assert_close(
        smooth_l1(p, t, beta=1.0), torch.nn.functional.smooth_l1_loss(p, t, beta=1.0, reduction="none")
    )


def _np_iou_terms(b1, b2):
    eps = 1e-7
    ix = np.clip(np.minimum(b1[:, 2], b2[:, 2]) - np.maximum(b1[:, 0], b2[:, 0]), 0, None)
    iy = np.clip(np.minimum(b1[:, 3], b2[:, 3]) - np.maximum(b1[:, 1], b2[:, 1]), 0, None)
    inter = ix * iy
    a1 = (b1[:, 2] - b1[:, 0]) * (b1[:, 3] - b1[:, 1])
    a2 = (b2[:, 2] - b2[:, 0]) * (b2[:, 3] - b2[:, 1])
    union = a1 + a2 - inter
    iou = inter / (union + eps)
    cw = np.maximum(b1[:, 2], b2[:, 2]) - np.minimum(b1[:, 0], b2[:, 0])
    ch = np.maximum(b1[:, 3], b2[:, 3]) - np.minimum(b1[:, 1], b2[:, 1])
    return iou, union, cw, ch


def _boxes(n, seed):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 50, (n, 2))
    wh = rng.uniform(1, 40, (n, 2))
    return np.concatenate([xy, xy + wh], 1)


def test_iou_family_losses_match_numpy():
    b1, b2 = _boxes(20, 0), _boxes(20, 1)
    iou, union, cw, ch = _np_iou_terms(b1, b2)
    area_c = cw * ch
    giou = iou - (area_c - union) / (area_c + 1e-7)
    c2 = cw**2 + ch**2 + 1e-7
    rho2 = ((b1[:, 0] + b1[:, 2] - b2[:, 0] - b2[:, 2]) / 2) ** 2 + (
        (b1[:, 1] + b1[:, 3] - b2[:, 1] - b2[:, 3]) / 2
    ) ** 2
    diou = iou - rho2 / c2
    w1, h1 = b1[:, 2] - b1[:, 0], b1[:, 3] - b1[:, 1]
    w2, h2 = b2[:, 2] - b2[:, 0], b2[:, 3] - b2[:, 1]
    v = 4 / math.pi**2 * (np.arctan(w2 / h2) - np.arctan(w1 / h1)) ** 2
    alpha = (iou > 0.5) * v / (1 - iou + v)  # mmdetection's CIoU: alpha only above IoU 0.5
    t1, t2 = torch.from_numpy(b1), torch.from_numpy(b2)
    np.testing.assert_allclose(giou_loss(t1, t2).numpy(), 1 - giou, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(diou_loss(t1, t2).numpy(), 1 - diou, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ciou_loss(t1, t2).numpy(), 1 - np.clip(diou - alpha * v, -1, 1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(giou_loss(t1, t2, reduction="mean").item(), (1 - giou).mean(), rtol=1e-6)


def test_giou_by_hand():
    # disjoint unit squares 1 apart: IoU 0, enclosing 3x1, union 2 -> GIoU = -1/3, loss 4/3
    b1 = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    b2 = torch.tensor([[2.0, 0.0, 3.0, 1.0]])
    torch.testing.assert_close(giou_loss(b1, b2), torch.tensor([4.0 / 3.0]))
    torch.testing.assert_close(giou_loss(b1, b1), torch.tensor([0.0]), atol=1e-6, rtol=0)


def test_iou_losses_gradcheck():
    b1 = torch.from_numpy(_boxes(6, 3)).requires_grad_()
    b2 = torch.from_numpy(_boxes(6, 4))
    for fn in (giou_loss, diou_loss):
        assert torch.autograd.gradcheck(lambda z: fn(z, b2, reduction="sum"), (b1,))


def test_delta_roundtrip():
    a = torch.from_numpy(_boxes(10, 5))
    b = torch.from_numpy(_boxes(10, 6))
    d = encode_deltas(a, b, (10.0, 10.0, 5.0, 5.0))
    aw = (a[:, 2] - a[:, 0]).numpy()
    bx = ((b[:, 0] + b[:, 2]) / 2).numpy()
    ax = ((a[:, 0] + a[:, 2]) / 2).numpy()
    np.testing.assert_allclose(d[:, 0].numpy(), 10 * (bx - ax) / aw)
    torch.testing.assert_close(decode_deltas(a, d, (10.0, 10.0, 5.0, 5.0)), b)


def test_registries_hold_callables():
    for reg in (CLASSIFICATION_LOSSES, REGRESSION_LOSSES):
        assert reg and all(callable(f) for f in reg.values())
