"""RS / AP / aLRP: values and identity-update gradients against the seed's equations in plain loops."""

import numpy as np
import pytest
import torch

from imbalance_cli.losses import alrp_loss, ap_loss, rank_sort_loss


def H(x, delta):
    if delta > 0:
        return min(1.0, max(0.0, x / (2 * delta) + 0.5))
    return 1.0 if x >= 0 else 0.0


def rs_reference(s, y, delta):
    """RS loss by seed 001: errors per positive (Fig. S1 rows), primary terms L_ij (Eq. S4), gradient by Eq. S2."""
    n = len(s)
    P = [i for i in range(n) if y[i] > 0]
    N = [i for i in range(n) if y[i] == 0]
    L = np.zeros((n, n))
    lr, ls = [], []
    for i in P:
        hp = {k: H(s[k] - s[i], delta) for k in P}
        hn = {j: H(s[j] - s[i], delta) for j in N}
        fp = sum(hn.values())
        rank_pos = sum(hp.values())
        l_r = fp / (rank_pos + fp)
        cur = sum(hp[k] * (1 - y[k]) for k in P) / rank_pos
        tgt_set = [k for k in P if y[k] >= y[i]]
        tgt = sum(hp[k] * (1 - y[k]) for k in tgt_set) / sum(hp[k] for k in tgt_set)
        lr.append(l_r)
        ls.append(cur - tgt)
        if fp > 0:
            for j in N:
                L[i, j] = l_r * hn[j] / fp  # p_R(j|i)
        mis = {k: hp[k] * (y[k] < y[i]) for k in P}
        den = sum(mis.values())
        if den > 0:
            for k in P:
                L[i, k] = (cur - tgt) * mis[k] / den  # p_S(k|i)
    grad = (L.sum(0) - L.sum(1)) / len(P)  # Eq. S2: sum_j L_ji - sum_j L_ij
    return np.mean(lr), np.mean(ls), grad


def test_fig_s1_worked_example():
    # seed 001, Fig. S1: logits 3..-4, labels .9 .4 0 0 .8 0 .1 0, unit step (delta -> 0): RS loss 0.24
    s = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0], requires_grad=True)
    y = torch.tensor([0.9, 0.4, 0.0, 0.0, 0.8, 0.0, 0.1, 0.0])
    ranking, sorting = rank_sort_loss(s, y, delta=0.0)
    total = ranking + sorting
    assert round(total.item(), 2) == 0.24
    # per-positive totals from Fig. S1(b): 0, 0, 0.55, 3/7 -> mean
    assert total.item() == pytest.approx((0.55 + 3 / 7) / 4, abs=1e-6)
    assert sorting.item() == pytest.approx(0.15 / 4, abs=1e-6)
    total.backward()
    # Fig. S2(b) discussion: i = 1 is pushed down (positive gradient) although it is a positive
    assert s.grad[1].item() == pytest.approx(0.15 / 4)
    assert s.grad[4].item() == pytest.approx(-(0.4 + 0.15) / 4)
    assert s.grad[2].item() == pytest.approx((0.4 / 2 + (3 / 7) / 3) / 4)
    assert s.grad[7].item() == 0.0  # below every positive: no effect on precision


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.0])
def test_rank_sort_matches_plain_loop(delta):
    rng = np.random.default_rng(int(delta * 10))
    n = 40
    s = rng.normal(size=n).round(1)  # rounding creates ties
    y = np.where(rng.random(n) < 0.3, rng.uniform(0.1, 1.0, n).round(1), 0.0)
    y[rng.random(n) < 0.1] = -1.0  # ignored
    ref_r, ref_s, ref_g = rs_reference(s.tolist(), y.tolist(), delta)
    ref_g[y < 0] = 0.0
    x = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    r, so = rank_sort_loss(x, torch.tensor(y), delta)
    assert r.item() == pytest.approx(ref_r, abs=1e-12)
    assert so.item() == pytest.approx(ref_s, abs=1e-12)
    (r + so).backward()
    np.testing.assert_allclose(x.grad.numpy(), ref_g, atol=1e-12)
    # separate gradients per output
    x.grad = None
    r, so = rank_sort_loss(x, torch.tensor(y), delta)
    (2 * r).backward()
    assert x.grad[y < 0].abs().sum() == 0


def test_rank_sort_no_positives_and_shapes():
    x = torch.randn(3, 4, requires_grad=True)
    r, so = rank_sort_loss(x, torch.zeros(3, 4))
    (r + so).backward()
    assert r.item() == 0.0 and x.grad.abs().sum().item() == 0.0
    with pytest.raises(ValueError):
        rank_sort_loss(x, torch.zeros(5))


def ap_reference(s, y, delta, e=None, interpolate=False, eps=0.0):
    """AP (the released APLoss) / aLRP (the released aLRPLoss) as their per-positive loops.

    Positives are visited from the lowest score up; AP keeps max_prec (interpolated precision) and
    spreads bg_relations / rank scaled by (1 - max_prec) / (1 - prec); aLRP's classification uses
    (N_FP + sum_k H E_k) / rank, and its localisation sums E over the positives sorted by hard score
    (highest first) divided by each one's rank.
    """
    n = len(s)
    P = [i for i in range(n) if y[i] > 0]
    N = [i for i in range(n) if y[i] == 0]
    grad = np.zeros(n)
    err, rank = {}, {}
    max_prec = 0.0
    for i in sorted(P, key=lambda k: (s[k], k)):
        hp = {k: H(s[k] - s[i], delta) for k in P if k != i}
        hn = {j: H(s[j] - s[i], delta) for j in N}
        fp = sum(hn.values())
        rank[i] = 1 + sum(hp.values()) + fp
        prec = (1 + sum(hp.values())) / rank[i]
        if e is None:
            if interpolate:
                if max_prec <= prec:
                    max_prec = prec
                    scale = 1.0
                else:
                    scale = (1 - max_prec) / (1 - prec)
                err[i] = 1 - max_prec
            else:
                scale, err[i] = 1.0, 1 - prec
            for j in N:
                grad[j] += hn[j] / rank[i] * scale
            grad[i] = -err[i]
        else:
            err[i] = 1 - prec
            if fp > eps:
                gi = (sum(hp[k] * e[k] for k in hp) + fp) / rank[i]
                grad[i] = -gi
                for j in N:
                    grad[j] += hn[j] * gi / fp
    grad /= len(P)
    loc = None
    if e is not None:
        desc = sorted(P, key=lambda k: (s[k], k), reverse=True)
        cum, terms = 0.0, []
        for i in desc:
            cum += e[i]
            terms.append(cum / rank[i])
        loc = np.mean(terms)
    return np.mean([err[i] for i in P]), loc, grad


@pytest.mark.parametrize("delta", [0.0, 1.0])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_ap_interpolated_and_alrp_match_released_loops(delta, seed):
    rng = np.random.default_rng(seed)
    n = 30
    s = rng.normal(size=n)
    y = (rng.random(n) < 0.3).astype(float)
    y[:2] = -1
    e = rng.uniform(0, 1, n)
    x = torch.tensor(s, requires_grad=True)
    for interp in (True, False):
        x.grad = None
        v = ap_loss(x, torch.tensor(y), delta, interpolate=interp)
        ref, _, g = ap_reference(s.tolist(), y.tolist(), delta, interpolate=interp)
        assert v.item() == pytest.approx(ref, abs=1e-12)
        v.backward()
        np.testing.assert_allclose(x.grad.numpy(), g, atol=1e-12)

    x.grad = None
    et = torch.tensor(e, requires_grad=True)
    cls, loc = alrp_loss(x, torch.tensor(y), et, delta)
    ref_c, ref_l, g = ap_reference(s.tolist(), y.tolist(), delta, e.tolist(), eps=1e-5)
    assert cls.item() == pytest.approx(ref_c, abs=1e-12)
    assert loc.item() == pytest.approx(ref_l, abs=1e-12)
    (cls + loc).backward()
    np.testing.assert_allclose(x.grad.numpy(), g, atol=1e-12)
    # loc gradient w.r.t. E_k: sum over positives i ranked at or below k of 1 / (|P| rank_i)


def test_ap_interpolation_changes_the_value_by_hand():
    # unit step; scores: pos 3, neg 2, pos 1, pos 0, neg -1 -> ranks 1, 3, 4; precisions 1, 2/3, 3/4.
    # Plain errors 0, 1/3, 1/4; interpolated (max precision at or below): 0, 1/4, 1/4.
    s = torch.tensor([3.0, 2.0, 1.0, 0.0, -1.0], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    assert ap_loss(s, y, 0.0, interpolate=False).item() == pytest.approx((0 + 1 / 3 + 1 / 4) / 3, abs=1e-15)
    assert ap_loss(s, y, 0.0).item() == pytest.approx((0 + 1 / 4 + 1 / 4) / 3, abs=1e-15)


def test_alrp_localisation_uses_hard_order_by_hand():
    # smoothed step delta 1: positives at 0.0 and 0.5 (E = 0.2, 0.6), one negative at 0.25.
    # Hard order: 0.5 first. rank(0.5) = 1 + H(-0.5) + H(-0.25) = 1 + 0.25 + 0.375 = 1.625;
    # rank(0.0) = 1 + H(0.5) + H(0.25) = 1 + 0.75 + 0.625 = 2.375
    s = torch.tensor([0.0, 0.5, 0.25], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    e = torch.tensor([0.2, 0.6, 0.0], dtype=torch.float64)
    _, loc = alrp_loss(s, y, e, 1.0)
    expect = (0.6 / 1.625 + (0.6 + 0.2) / 2.375) / 2
    assert loc.item() == pytest.approx(expect, abs=1e-15)
