"""ECM and BAGS (and the other long-tail losses) against hand computations of the papers' formulas."""

import math

import numpy as np
import pytest
import torch

from imbalance_cli.losses import (
    bags_label2binlabel,
    bags_loss,
    bags_merge,
    bags_num_outputs,
    bags_pred_slice,
    ecm_loss,
    ecm_margins,
)


def test_ecm_margins_by_hand_two_stage():
    # counts 1, 16, 81 and ratio 2: background = 2 * 98 = 196, total 294
    m = ecm_margins([1, 16, 81], fg_bg_ratio=2.0)
    n_pos = np.array([1.0, 16.0, 81.0, 196.0])
    n_neg = 294.0 - n_pos
    np.testing.assert_array_equal(m["n_pos"], n_pos)
    np.testing.assert_array_equal(m["n_neg"], n_neg)
    # class 1: n+^(1/4) = 2, n-^(1/4) = 278^(1/4)
    q = 278.0**0.25
    assert m["gamma_pos"][1] == pytest.approx(q / (2 + q))
    assert m["gamma_neg"][1] == pytest.approx(2 / (2 + q))
    assert m["w_pos"][1] == pytest.approx((2 + q) / q)
    assert m["m_neg"][1] == pytest.approx(math.log((2 + q) / 2))
    a = 278.0 / 16.0
    assert m["weight"][1] == pytest.approx(a * math.log((1 + a) / a))
    np.testing.assert_allclose(m["gamma_pos"] + m["gamma_neg"], 1.0)


def test_ecm_margins_one_stage_and_rare_classes_get_larger_positive_margin():
    m = ecm_margins([1, 16, 81])
    assert len(m["gamma_pos"]) == 3
    np.testing.assert_array_equal(m["n_neg"], [97.0, 82.0, 17.0])
    assert m["gamma_pos"][0] > m["gamma_pos"][1] > m["gamma_pos"][2]
    with pytest.raises(ValueError):
        ecm_margins([1, 2], fg_bg_ratio=-1.0)
    with pytest.raises(ValueError):
        ecm_margins([[1, 2]])


def _ecm_by_hand(x, labels, counts, ratio):
    """Eq. 10/11 as the authors' code: s^ = w+ e^f / (w+ e^f + w- e^-f) on the raw logit f,
    one term per (box, channel)."""
    n = list(counts) + ([ratio * sum(counts)] if ratio is not None else [])
    total = sum(n)
    out = 0.0
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            npos, nneg = n[c], total - n[c]
            gp = nneg**0.25 / (npos**0.25 + nneg**0.25)
            gn = npos**0.25 / (npos**0.25 + nneg**0.25)
            wp, wn = 1 / gp, 1 / gn
            f = x[i, c]
            s = wp * math.exp(f) / (wp * math.exp(f) + wn * math.exp(-f))
            a = nneg / npos
            mc = a * math.log((1 + a) / a)
            y = 1.0 if labels[i] == c else 0.0
            out += -mc * (y * math.log(s) + (1 - y) * math.log(1 - s))
    return out / x.shape[0]


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [None, 3.0])
def test_ecm_loss_three_classes_by_hand(ratio):
    counts = [2, 30, 400]
    ch = 3 if ratio is None else 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, ch, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 3, 3])  # 3 = background (two-stage) / no class (one-stage)
    got = ecm_loss(x, labels, counts, fg_bg_ratio=ratio)
    assert got.item() == pytest.approx(_ecm_by_hand(x.numpy(), labels.tolist(), counts, ratio), rel=1e-10)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda z: ecm_loss(z, labels, counts, ratio), (x,))


def test_ecm_official_value_on_a_hand_vector():
    # counts (100, 10, 1), fg:bg 6.3313 (the authors' default), two boxes: the official
    # EffectiveClassMarginLoss gives 0.06334 (value computed by hand below, term by term)
    x = torch.tensor([[2.0, -1, -3, -2], [-2, -2, -2, 1]], dtype=torch.float64)
    labels = torch.tensor([0, 3])
    expect = _ecm_by_hand(x.numpy(), labels.tolist(), [100, 10, 1], 6.3313)
    assert expect == pytest.approx(0.06334, abs=5e-6)
    assert ecm_loss(x, labels, [100, 10, 1], 6.3313).item() == pytest.approx(expect, abs=1e-12)


def test_ecm_decision_boundary_is_the_margin():
    # Cho & Krähenbühl, ECCV 2022, supp. Eqs. 28-31: the surrogate boundary s^ = 1/2 sits where
    # 2 f + m+ - m- = 0, i.e. where the plain score sigmoid(2 f) equals gamma+
    counts = [3, 300]
    m = ecm_margins(counts)
    f0 = (m["m_neg"][0] - m["m_pos"][0]) / 2
    assert 1 / (1 + math.exp(-2 * f0)) == pytest.approx(m["gamma_pos"][0])
    x = torch.tensor([[f0, 0.0]], dtype=torch.float64)
    lp = ecm_loss(x, torch.tensor([0]), counts)
    ln = ecm_loss(x, torch.tensor([1]), counts)
    w1 = m["weight"][1]
    s1 = 1 / (1 + math.exp(-(0.0 + m["m_pos"][1] - m["m_neg"][1])))
    ch1_pos, ch1_neg = -w1 * math.log(1 - s1), -w1 * math.log(s1)
    assert (lp.item() - ch1_pos) == pytest.approx(ln.item() - ch1_neg)


def test_ecm_bad_shapes():
    with pytest.raises(ValueError, match="shape"):
        ecm_loss(torch.zeros(2, 3), torch.tensor([0, 1]), [1, 2, 3], fg_bg_ratio=1.0)
    with pytest.raises(ValueError, match="labels"):
        ecm_loss(torch.zeros(2, 3), torch.tensor([0, 4]), [1, 2, 3])


# ---------------------------------------------------------------------------------------- BAGS

COUNTS = [5, 50, 500, 3, 2000, 70]  # groups (edges 0,10,100,1000,inf): 1,2,3,1,4,2


def test_bags_tables_by_hand():
    l2b = bags_label2binlabel(COUNTS)
    expect = torch.tensor(
        [
            [0, 0, 0, 0, 0, 0, 1],  # group 0: others = foreground, 1 = background
            [1, 0, 0, 2, 0, 0, 0],  # group 1: classes 0, 3
            [0, 1, 0, 0, 0, 2, 0],  # group 2: classes 1, 5
            [0, 0, 1, 0, 0, 0, 0],  # group 3: class 2
            [0, 0, 0, 0, 1, 0, 0],  # group 4: class 4
        ]
    )
    torch.testing.assert_close(l2b, expect)
    ps = bags_pred_slice(COUNTS)
    torch.testing.assert_close(ps, torch.tensor([[0, 2], [2, 3], [5, 3], [8, 2], [10, 2]]))
    assert bags_num_outputs(ps) == len(COUNTS) + 4 + 2  # C + N + 2 (seed 002, §4.2)


def _bags_by_hand(x, labels, l2b, ps, keep_others):
    """Eq. 5 per group, each group's cross-entropy averaged over the boxes it uses (the authors' avg_factor)."""
    total = 0.0
    for g in range(ps.shape[0]):
        s, ln = ps[g]
        terms = []
        for i, y in enumerate(labels):
            if y < 0:
                continue
            t = l2b[g, y]
            if g > 0 and t == 0 and not keep_others[g][i]:
                continue
            z = x[i, s : s + ln]
            terms.append(-(z[t] - math.log(np.exp(z).sum())))
        if g > 0 and not any(l2b[g, y] > 0 for y in labels if y >= 0):
            continue  # no box of the group's classes: the group contributes 0
        total += sum(terms) / max(len(terms), 1)
    return total


@pytest.mark.slow
def test_bags_loss_all_others_kept_matches_eq5():
    l2b, ps = bags_label2binlabel(COUNTS).numpy(), bags_pred_slice(COUNTS).numpy()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, bags_num_outputs(torch.from_numpy(ps)), generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 6, 6, -1, 3])  # group 4 (class 4) has no box -> skipped
    keep = {gr: [gr != 4] * 7 for gr in range(5)}
    expect = _bags_by_hand(x.numpy(), labels.tolist(), l2b, ps, keep)
    got = bags_loss(x, labels, torch.from_numpy(l2b), torch.from_numpy(ps), beta=float("inf"))
    assert got.item() == pytest.approx(expect, rel=1e-10)
    x.requires_grad_()
    fn = lambda z: bags_loss(z, labels, torch.from_numpy(l2b), torch.from_numpy(ps), beta=float("inf"))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))


def test_bags_per_group_mean_differs_from_global_mean():
    # one box of class 2 (group 3) among 20 backgrounds, beta = 1: group 3 uses 2 boxes
    # (the positive + floor(1 * 1) = 1 sampled 'other'), group 0 uses all 21. Every background row
    # is the same, so the value does not depend on which 'other' is drawn.
    l2b, ps = bags_label2binlabel(COUNTS), bags_pred_slice(COUNTS)
    g = torch.Generator().manual_seed(4)
    row_pos = torch.randn(bags_num_outputs(ps), generator=g, dtype=torch.float64)
    row_bg = torch.randn(bags_num_outputs(ps), generator=g, dtype=torch.float64)
    x = torch.stack([row_pos] + [row_bg] * 20)
    labels = torch.tensor([2] + [6] * 20)

    def ce(z, t):
        return -(z[t] - math.log(np.exp(z).sum()))

    (s0, n0), (s3, n3) = ps[0].tolist(), ps[3].tolist()
    zp0, zb0 = row_pos[s0 : s0 + n0].numpy(), row_bg[s0 : s0 + n0].numpy()
    zp3, zb3 = row_pos[s3 : s3 + n3].numpy(), row_bg[s3 : s3 + n3].numpy()
    group0 = (ce(zp0, 0) + 20 * ce(zb0, 1)) / 21  # others = 0, background = 1
    group3 = (ce(zp3, 1) + ce(zb3, 0)) / 2
    got = bags_loss(x, labels, l2b, ps, beta=1.0, generator=torch.Generator().manual_seed(0))
    assert got.item() == pytest.approx(group0 + group3, abs=1e-12)
    global_mean = (ce(zp0, 0) + 20 * ce(zb0, 1) + ce(zp3, 1) + ce(zb3, 0)) / 21
    assert abs(global_mean - (group0 + group3)) > 1e-3  # the case tells the two normalisations apart


def test_bags_others_sampling_count():
    # one box of class 2 (group 3) and 20 backgrounds: beta = 8 -> exactly 8 'others' boxes in group 3
    l2b, ps = bags_label2binlabel(COUNTS), bags_pred_slice(COUNTS)
    x = torch.zeros(21, bags_num_outputs(ps), dtype=torch.float64)
    labels = torch.tensor([2] + [6] * 20)
    loss = bags_loss(x, labels, l2b, ps, beta=8, reduction="none", generator=torch.Generator().manual_seed(0))
    # zero logits: group 0 costs log 2 for everyone; group 3 (2 outputs) costs log 2 for each used box
    n_group3 = torch.isclose(loss, torch.tensor(2 * math.log(2), dtype=torch.float64)).sum().item()
    assert n_group3 == 9  # the positive + 8 sampled others
    assert loss.sum().item() == pytest.approx((21 + 9) * math.log(2))


def test_bags_merge_by_hand():
    l2b, ps = bags_label2binlabel(COUNTS), bags_pred_slice(COUNTS)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, bags_num_outputs(ps), generator=g, dtype=torch.float64)
    out = bags_merge(x, l2b, ps).numpy()
    z = x.numpy()

    def sm(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    for i in range(3):
        p0 = sm(z[i, 0:2])
        g1, g2, g3, g4 = sm(z[i, 2:5]), sm(z[i, 5:8]), sm(z[i, 8:10]), sm(z[i, 10:12])
        expect = p0[0] * np.array([g1[1], g2[1], g3[1], g1[2], g4[1], g2[2]])
        np.testing.assert_allclose(out[i, :6], expect, rtol=1e-12)
        assert out[i, 6] == pytest.approx(p0[1])
