"""The remaining classification, long-tail and regression losses against hand/numpy formulas."""

import math

import numpy as np
import pytest
import torch

from imbalance_cli.losses import (
    GHMC,
    GHMR,
    EQLv2,
    SeesawLoss,
    balanced_l1,
    bounded_iou,
    class_balanced,
    class_balanced_weights,
    eqlv2,
    ghm_c,
    ghm_r,
    iou_balanced_cls,
    iou_balanced_l1,
    iou_loss,
    seesaw,
    smooth_l1,
)


def sig(x):
    return 1 / (1 + np.exp(-x))


def bce(x, t):
    p = sig(x)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def _data(seed=0, b=8, c=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(b, c)) * 2
    labels = rng.integers(0, c + 1, size=b)  # c = background
    t = np.zeros((b, c))
    for i, y in enumerate(labels):
        if y < c:
            t[i, y] = 1
    return x, t, labels


# ------------------------------------------------------------------------ IoU-balanced (seed 004)


def test_iou_balanced_cls_eq1_eq2():
    x, t, _ = _data(1)
    iou = np.random.default_rng(2).uniform(0.3, 1.0, size=x.shape[0])
    ce = bce(x, t)
    pos = t > 0
    raw = np.where(pos, iou[:, None] ** 1.5, 1.0)
    w = np.where(pos, raw * ce[pos].sum() / ((raw * ce)[pos].sum() + 1e-6), 1.0)  # the authors' + 1e-6
    xt = torch.tensor(x, requires_grad=True)
    got = iou_balanced_cls(xt, torch.tensor(t), torch.tensor(iou), eta=1.5)
    np.testing.assert_allclose(got.detach().numpy(), w * ce, rtol=1e-10)
    # the positives' total loss is unchanged, negatives untouched
    assert got.detach().numpy()[pos].sum() == pytest.approx(ce[pos].sum(), rel=1e-5)
    np.testing.assert_allclose(got.detach().numpy()[~pos], ce[~pos])
    got.sum().backward()  # weights are constants: d/dx = w (sigmoid(x) - t)
    np.testing.assert_allclose(xt.grad.numpy(), w * (sig(x) - t), rtol=1e-9)


def test_iou_balanced_l1_eq4_eq5():
    rng = np.random.default_rng(3)
    p, g = rng.normal(size=(5, 4)) * 0.3, rng.normal(size=(5, 4)) * 0.3
    iou = rng.uniform(0.4, 0.95, size=5)
    d = np.abs(p - g)
    beta = 1 / 9
    sl1 = np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
    got4 = iou_balanced_l1(torch.tensor(p), torch.tensor(g), torch.tensor(iou), lam=1.5, w_loc=3.049)
    np.testing.assert_allclose(got4.numpy(), 3.049 * iou[:, None] ** 1.5 * sl1, rtol=1e-10)
    pt = torch.tensor(p, requires_grad=True)
    got5 = iou_balanced_l1(pt, torch.tensor(g), torch.tensor(iou), lam=1.5)
    w5 = iou[:, None] ** 1.5 * sl1.sum() / (iou[:, None] ** 1.5 * sl1).sum()
    np.testing.assert_allclose(got5.detach().numpy(), w5 * sl1, rtol=1e-10)
    assert got5.sum().item() == pytest.approx(sl1.sum())  # Eq. 5 keeps the sum
    got5.sum().backward()  # Eq. 6: w * d/beta inside, w * sign(d) outside
    dd = p - g
    expect = w5 * np.where(np.abs(dd) <= beta, dd / beta, np.sign(dd))
    np.testing.assert_allclose(pt.grad.numpy(), expect, rtol=1e-9)


# --------------------------------------------------------------------------------------- GHM-C


class _GhmReference:
    """mmdetection's GHMC / GHMR written as plain loops (edges i / bins, last edge raised; acc starts at 0,
    only bins holding samples are updated, weights tot / acc, divided by the number of non-empty bins)."""

    def __init__(self, bins, momentum, top):
        self.bins, self.mmt = bins, momentum
        self.edges = [i / bins for i in range(bins + 1)]
        self.edges[-1] = top
        self.acc = [0.0] * bins

    def weights(self, g):
        g = np.asarray(g, dtype=np.float64).ravel()
        tot = max(g.size, 1)
        w = np.zeros_like(g)
        n = 0
        for i in range(self.bins):
            inds = (g >= self.edges[i]) & (g < self.edges[i + 1])
            num = int(inds.sum())
            if num > 0:
                if self.mmt > 0:
                    self.acc[i] = self.mmt * self.acc[i] + (1 - self.mmt) * num
                    w[inds] = tot / self.acc[i]
                else:
                    w[inds] = tot / num
                n += 1
        if n > 0:
            w = w / n
        return w, tot


def test_ghm_c_matches_mmdetection_loop():
    x, t, _ = _data(4, 16, 5)
    w, tot = _GhmReference(10, 0.0, 1 + 1e-6).weights(np.abs(sig(x) - t))
    w = w.reshape(x.shape)
    got = ghm_c(torch.tensor(x), torch.tensor(t), bins=10, reduction="none")
    np.testing.assert_allclose(got.numpy(), w * bce(x, t), rtol=1e-10)
    assert ghm_c(torch.tensor(x), torch.tensor(t), bins=10).item() == pytest.approx(
        (w * bce(x, t)).sum() / tot, abs=1e-12
    )


def test_ghm_c_momentum_module_first_and_second_call():
    x1, t1, _ = _data(5, 10, 3)
    x2, t2, _ = _data(6, 10, 3)
    ref = _GhmReference(5, 0.75, 1 + 1e-6)
    m = GHMC(bins=5, momentum=0.75)
    for x, t in ((x1, t1), (x2, t2)):
        w, tot = ref.weights(np.abs(sig(x) - t))
        xt = torch.tensor(x, requires_grad=True)
        got = m(xt, torch.tensor(t))
        expect = (w.reshape(x.shape) * bce(x, t)).sum() / tot
        assert got.item() == pytest.approx(expect, abs=1e-12)
        np.testing.assert_allclose(m.acc_counts.numpy(), ref.acc, rtol=1e-12)
        got.backward()  # d BCE / dx = sigmoid(x) - t, times the (constant) weight
        np.testing.assert_allclose(xt.grad.numpy(), w.reshape(x.shape) * (sig(x) - t) / tot, atol=1e-12)


def test_ghm_c_first_call_with_momentum_is_four_times_the_plain_weight():
    # acc starts at 0: after one call acc_i = (1 - 0.75) * count_i, so every weight is 4x the momentum-free one
    x, t, _ = _data(11, 12, 4)
    plain = ghm_c(torch.tensor(x), torch.tensor(t), bins=10, reduction="sum").item()
    mom = GHMC(bins=10, momentum=0.75)(torch.tensor(x), torch.tensor(t), reduction="sum").item()
    assert mom == pytest.approx(4 * plain, rel=1e-12)


def _asl1(d, mu):
    return np.sqrt(d * d + mu * mu) - mu


def test_ghm_r_matches_mmdetection_loop_with_momentum():
    rng = np.random.default_rng(21)
    ref = _GhmReference(10, 0.7, 1e3)
    m = GHMR(mu=0.02, bins=10, momentum=0.7)
    for _ in range(3):
        p = rng.normal(scale=0.3, size=(7, 4))
        g = rng.normal(scale=0.3, size=(7, 4))
        d = p - g
        w, tot = ref.weights(np.abs(d / np.sqrt(0.02**2 + d * d)))
        w = w.reshape(d.shape)
        pt = torch.tensor(p, requires_grad=True)
        got = m(pt, torch.tensor(g))
        assert got.item() == pytest.approx((w * _asl1(d, 0.02)).sum() / tot, abs=1e-12)
        np.testing.assert_allclose(m.acc_counts.numpy(), ref.acc, rtol=1e-12)
        got.backward()  # d ASL1 / dd = d / sqrt(d^2 + mu^2)
        np.testing.assert_allclose(pt.grad.numpy(), w * d / np.sqrt(d * d + 0.02**2) / tot, atol=1e-12)


def test_ghm_r_by_hand_small():
    # two elements, d = 0 (gradient norm 0, bin 0) and d = 1 (gr = 1/sqrt(1.0004) ~ 0.9998, bin 9):
    # two non-empty bins, tot 2 -> each weight 2 / (2 * 1) = 1; loss = (0 + sqrt(1.0004) - 0.02) / 2
    got = ghm_r(torch.tensor([0.0, 1.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    assert got.item() == pytest.approx((math.sqrt(1.0004) - 0.02) / 2, abs=1e-12)


# ------------------------------------------------------------------------------ class-balanced


def test_class_balanced_weights_and_loss():
    counts = [1, 10, 100]
    beta = 0.9
    raw = np.array([(1 - beta) / (1 - beta**n) for n in counts])
    w = raw / raw.sum() * 3
    np.testing.assert_allclose(class_balanced_weights(counts, beta), w)
    assert w[0] > w[1] > w[2]
    x, t, labels = _data(7, 6, 3)
    got = class_balanced(torch.tensor(x), torch.tensor(t), counts, beta=beta, loss="sigmoid", reduction="none")
    row = np.array([w[y] if y < 3 else 1.0 for y in labels])
    np.testing.assert_allclose(got.numpy(), bce(x, t) * row[:, None], rtol=1e-10)
    # softmax with a background column: bg samples weigh bg_weight
    z = np.random.default_rng(8).normal(size=(6, 4))
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    wk = np.append(w, 0.5)
    expect = np.mean([-logp[i, y] * wk[y] for i, y in enumerate(labels)])
    got = class_balanced(torch.tensor(z), torch.tensor(labels), counts, beta=beta, loss="softmax", bg_weight=0.5)
    assert got.item() == pytest.approx(expect)


# --------------------------------------------------------------------------------------- EQLv2


def test_eqlv2_weights_loss_and_accumulation():
    x, t, labels = _data(9, 8, 4)
    pos_grad = np.array([4.0, 1.0, 0.5, 0.0])
    neg_grad = np.array([4.0, 5.0, 0.5, 2.0])
    q = sig(12 * (pos_grad / (neg_grad + 1e-10) - 0.8))
    wpos, wneg = 1 + 4 * (1 - q), q
    w = wpos * t + wneg * (1 - t)
    expect = (w * bce(x, t)).sum() / 8
    got = eqlv2(torch.tensor(x), torch.tensor(labels), torch.tensor(pos_grad), torch.tensor(neg_grad))
    assert got.item() == pytest.approx(expect)
    # rare class (small pos/neg ratio) gets small negative and large positive weight
    assert wneg[3] < 1e-3 and wpos[3] > 4.9
    m = EQLv2(4)
    m.pos_grad.copy_(torch.tensor(pos_grad))
    m.neg_grad.copy_(torch.tensor(neg_grad))
    m.pos_neg.copy_(torch.tensor(pos_grad / (neg_grad + 1e-10)))
    xt = torch.tensor(x, requires_grad=True)
    loss = m(xt, torch.tensor(labels), reduction="sum")
    loss.backward()
    gabs = np.abs(xt.grad.numpy())  # the exact gradient of the summed loss
    np.testing.assert_allclose(m.pos_grad.numpy(), pos_grad + (gabs * t).sum(0), rtol=1e-9)
    np.testing.assert_allclose(m.neg_grad.numpy(), neg_grad + (gabs * (1 - t)).sum(0), rtol=1e-9)
    assert torch.autograd.gradcheck(
        lambda z: eqlv2(z, torch.tensor(labels), torch.tensor(pos_grad), torch.tensor(neg_grad)),
        (xt.detach().clone().requires_grad_(),),
    )


# -------------------------------------------------------------------------------------- Seesaw


def _seesaw_loop(z, labels, counts, p, q, eps):
    c = len(counts)
    out = []
    for i, y in enumerate(labels):
        e = np.exp(z[i] - z[i].max())
        sm = e / e.sum()
        if y >= c:
            out.append(-np.log(sm[y]))
            continue
        denom = e[y]
        for j in range(z.shape[1]):
            if j == y:
                continue
            s = 1.0
            if j < c:
                if counts[y] > counts[j]:
                    s *= (counts[j] / counts[y]) ** p
                if sm[j] > max(sm[y], eps):
                    s *= (sm[j] / max(sm[y], eps)) ** q
            denom += s * e[j]
        out.append(-np.log(e[y] / denom))
    return np.array(out)


def test_seesaw_matches_loop_and_module_counts():
    rng = np.random.default_rng(10)
    z = rng.normal(size=(12, 5)) * 2  # 4 classes + background
    labels = rng.integers(0, 5, size=12)
    counts = np.array([500.0, 50.0, 5.0, 1.0])
    got = seesaw(torch.tensor(z), torch.tensor(labels), counts, reduction="none")
    np.testing.assert_allclose(got.numpy(), _seesaw_loop(z, labels, counts, 0.8, 2.0, 1e-2), rtol=1e-9)
    # with equal counts and the true class most probable, seesaw is plain cross-entropy
    z2 = np.array([[3.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    ce = -np.log(np.exp(z2[[0, 1], [0, 1]]) / np.exp(z2).sum(1))
    got2 = seesaw(torch.tensor(z2), torch.tensor([0, 1]), [7.0, 7.0], reduction="none")
    np.testing.assert_allclose(got2.numpy(), ce, rtol=1e-12)
    m = SeesawLoss(4)
    m(torch.tensor(z), torch.tensor(labels))
    np.testing.assert_array_equal(m.cum_counts.numpy(), np.bincount(labels[labels < 4], minlength=4))


# ---------------------------------------------------------------------------------- regression


def _balanced_l1_survey(x, alpha=0.5, gamma=1.5):
    """Survey seed 000, Eq. 11 with Eq. 12 (threshold 1)."""
    b = math.exp(gamma / alpha) - 1
    ax = np.abs(x)
    z = gamma / b - alpha  # makes Eq. 11 continuous at |x| = 1
    return np.where(ax < 1, alpha / b * (b * ax + 1) * np.log(b * ax + 1) - alpha * ax, gamma * ax + z)


def test_balanced_l1_survey_eq11_and_gradient_eq10():
    x = np.array([-3.0, -1.0, -0.4, 0.0, 0.2, 0.999, 1.0, 2.5])
    xt = torch.tensor(x, requires_grad=True)
    got = balanced_l1(xt, torch.zeros(8, dtype=torch.float64))
    np.testing.assert_allclose(got.detach().numpy(), _balanced_l1_survey(x), rtol=1e-10, atol=1e-12)
    got.sum().backward()
    b = math.exp(3.0) - 1
    expect = np.where(np.abs(x) < 1, 0.5 * np.log(b * np.abs(x) + 1), 1.5) * np.sign(x)
    np.testing.assert_allclose(xt.grad.numpy(), expect, rtol=1e-9, atol=1e-12)
    # continuity at the threshold and the scaling L_beta(x) = beta L_1(x / beta)
    lo = balanced_l1(torch.tensor([1 - 1e-9], dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    hi = balanced_l1(torch.tensor([1.0], dtype=torch.float64), torch.zeros(1, dtype=torch.float64))
    assert lo.item() == pytest.approx(hi.item(), abs=1e-8)
    # beta != 1 (mmdetection's form): the value is continuous at |x| = beta, the gradient jumps there
    for beta in (0.5, 0.11):
        z = torch.tensor([beta * (1 - 1e-10), beta], dtype=torch.float64, requires_grad=True)
        v = balanced_l1(z, torch.zeros(2, dtype=torch.float64), beta=beta)
        assert v[0].item() == pytest.approx(v[1].item(), abs=1e-8)
        (g,) = torch.autograd.grad(v.sum(), z)
        assert g[1].item() == pytest.approx(1.5) and abs(g[0].item() - 1.5) > 1e-3


def test_iou_loss_by_hand():
    # 2x2 box vs its 1x1 corner: IoU 1/4
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    b = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
    assert iou_loss(a, b).item() == pytest.approx(math.log(4), rel=1e-6)
    assert iou_loss(a, b, mode="linear").item() == pytest.approx(0.75, rel=1e-6)
    assert iou_loss(a, b, mode="square").item() == pytest.approx(1 - 1 / 16, rel=1e-6)
    with pytest.raises(ValueError):
        iou_loss(a, b, mode="cube")


def test_bounded_iou_by_hand():
    # target centre (5, 5), 10 x 10; prediction shifted by 1 in x and 20 x 5
    target = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64)
    pred = torch.tensor([[-4.0, 2.5, 16.0, 7.5]], dtype=torch.float64)
    iou_b = np.array([(10 - 2) / (10 + 2), 1.0, 10 / 20, 5 / 10])  # survey Eqs. 16-17
    err = 1 - iou_b
    beta = 0.2
    expect = np.where(err < beta, 0.5 * err**2 / beta, err - 0.5 * beta)  # Eq. 15 without the survey's 2 (mmdetection)
    got = bounded_iou(pred, target, beta=beta, eps=1e-12)
    np.testing.assert_allclose(got.numpy()[0], expect, rtol=1e-6, atol=1e-9)
    p = pred.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda z: bounded_iou(z, target + 0.3, beta=beta, reduction="sum"), (p,))


def test_smooth_based_gradchecks():
    x = torch.tensor([[-1.5, -0.3, 0.2, 2.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: balanced_l1(z, torch.zeros_like(z), reduction="sum"), (x,))
    assert torch.autograd.gradcheck(lambda z: smooth_l1(z, torch.zeros_like(z), beta=0.5, reduction="sum"), (x,))


def test_eqlv2_module_first_calls_follow_the_official_state():
    # the authors' EQLv2 caches pos_neg = 100 at start (both weights 1 on the first call), then
    # pos_neg = pos_grad / (neg_grad + 1e-10) after each call; reference written as plain numpy
    x1, t1, l1 = _data(31, 6, 3)
    x2, t2, l2 = _data(32, 6, 3)
    m = EQLv2(3)
    pos_neg = np.full(3, 100.0)
    pg, ng = np.zeros(3), np.zeros(3)
    for x, t, lab in ((x1, t1, l1), (x2, t2, l2)):
        q = sig(12 * (pos_neg - 0.8))
        w = (1 + 4 * (1 - q)) * t + q * (1 - t)
        expect = (w * bce(x, t)).sum() / x.shape[0]
        xt = torch.tensor(x, requires_grad=True)
        got = m(xt, torch.tensor(lab))
        assert got.item() == pytest.approx(expect, abs=1e-12)
        got.backward()
        np.testing.assert_allclose(xt.grad.numpy(), w * (sig(x) - t) / x.shape[0], atol=1e-12)
        gabs = w * np.abs(sig(x) - t)
        pg += (gabs * t).sum(0)
        ng += (gabs * (1 - t)).sum(0)
        pos_neg = pg / (ng + 1e-10)
        np.testing.assert_allclose(m.pos_neg.numpy(), pos_neg, rtol=1e-12)
    # first call: weights exactly 1 (to float64 precision), i.e. plain BCE
    m0 = EQLv2(3)
    assert m0(torch.tensor(x1), torch.tensor(l1)).item() == pytest.approx(bce(x1, t1).sum() / 6, rel=1e-12)
