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


def ap_reference(s, y, delta, e=None):
    """AP (Chen et al. 2019) / aLRP (Oksuz et al. 2020) primary terms and Eq. S2 gradients, in loops."""
    n = len(s)
    P = [i for i in range(n) if y[i] > 0]
    N = [i for i in range(n) if y[i] == 0]
    L = np.zeros((n, n))
    cls, loc = [], []
    for i in P:
        hp = {k: H(s[k] - s[i], delta) for k in P if k != i}
        hn = {j: H(s[j] - s[i], delta) for j in N}
        fp = sum(hn.values())
        rank = 1 + sum(hp.values()) + fp
        cls.append(fp / rank)
        extra = 0.0 if e is None else sum(e[k] * hp[k] for k in hp)
        if e is not None:
            loc.append((e[i] + extra) / rank)
        if fp > 0:
            for j in N:
                L[i, j] = (fp + extra) / rank * hn[j] / fp
    grad = (L.sum(0) - L.sum(1)) / len(P)
    return np.mean(cls), (np.mean(loc) if e is not None else None), grad


@pytest.mark.parametrize("delta", [0.0, 1.0])
def test_ap_and_alrp_match_plain_loop(delta):
    rng = np.random.default_rng(3)
    n = 30
    s = rng.normal(size=n)
    y = (rng.random(n) < 0.3).astype(float)
    y[:2] = -1
    e = rng.uniform(0, 1, n)
    x = torch.tensor(s, requires_grad=True)
    v = ap_loss(x, torch.tensor(y), delta)
    ref, _, g = ap_reference(s.tolist(), y.tolist(), delta)
    assert v.item() == pytest.approx(ref, abs=1e-12)
    v.backward()
    np.testing.assert_allclose(x.grad.numpy(), g, atol=1e-12)

    x.grad = None
    et = torch.tensor(e, requires_grad=True)
    cls, loc = alrp_loss(x, torch.tensor(y), et, delta)
    ref_c, ref_l, g = ap_reference(s.tolist(), y.tolist(), delta, e.tolist())
    assert cls.item() == pytest.approx(ref_c, abs=1e-12)
    assert loc.item() == pytest.approx(ref_l, abs=1e-12)
    (cls + loc).backward()
    np.testing.assert_allclose(x.grad.numpy(), g, atol=1e-12)
    # loc gradient w.r.t. E_loc(k): (1/rank_k + sum_{i != k} H(x_ik)/rank_i) / |P| by linearity, checked numerically
    eps = 1e-6
    k = int(np.flatnonzero(y > 0)[0])
    e2 = e.copy()
    e2[k] += eps
    _, ref_l2, _ = ap_reference(s.tolist(), y.tolist(), delta, e2.tolist())
    assert et.grad[k].item() == pytest.approx((ref_l2 - ref_l) / eps, rel=1e-5)
    assert et.grad[y <= 0].abs().sum().item() == 0.0


def test_ap_loss_perfect_ranking_is_zero():
    x = torch.tensor([5.0, 4.0, -3.0, -4.0])
    assert ap_loss(x, torch.tensor([1.0, 1.0, 0.0, 0.0])).item() == 0.0


def test_chunked_positive_blocks_give_the_same_result(monkeypatch):
    import imbalance_cli.losses.ranking as R

    rng = np.random.default_rng(11)
    s = torch.tensor(rng.normal(size=300))
    y = torch.tensor(np.where(rng.random(300) < 0.2, rng.uniform(0.1, 1, 300), 0.0))
    e = torch.tensor(rng.uniform(0, 1, 300))

    def run():
        x = s.clone().requires_grad_()
        r, so = rank_sort_loss(x, y, 0.5)
        c, loc = alrp_loss(x, (y > 0).double(), e, 1.0)
        (r + so + c + loc).backward()
        return torch.stack([r, so, c, loc]).detach(), x.grad

    v1, g1 = run()
    monkeypatch.setattr(R, "_CHUNK_ELEMS", 100)  # a few rows per block
    v2, g2 = run()
    torch.testing.assert_close(v1, v2, rtol=0, atol=1e-12)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 25),
    seed=st.integers(0, 10_000),
    delta=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
)
def test_rank_sort_property_matches_loop(n, seed, delta):
    rng = np.random.default_rng(seed)
    s = rng.integers(-4, 5, size=n) / 2.0  # coarse grid: many ties and exact breakpoints
    y = np.where(rng.random(n) < 0.4, rng.choice([0.2, 0.5, 0.5, 0.9], size=n), 0.0)
    y[rng.random(n) < 0.1] = -1.0
    x = torch.tensor(s, requires_grad=True)
    r, so = rank_sort_loss(x, torch.tensor(y), delta)
    if not (y > 0).any():
        assert r.item() == 0.0 and so.item() == 0.0
        return
    ref_r, ref_s, ref_g = rs_reference(s.tolist(), y.tolist(), delta)
    ref_g[y < 0] = 0.0
    (r + so).backward()
    assert r.item() == pytest.approx(ref_r, abs=1e-12)
    assert so.item() == pytest.approx(ref_s, abs=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), ref_g, atol=1e-12)


def test_float32_inputs_match_float64():
    rng = np.random.default_rng(12)
    s = rng.normal(size=500)
    y = np.where(rng.random(500) < 0.1, rng.uniform(0.2, 1, 500), 0.0)
    s[0] = s[y > 0].min() - 0.5 + 1e-7  # a negative right at the floor min(s_P) - delta
    y[0] = 0.0
    out = []
    for dt in (torch.float32, torch.float64):
        x = torch.tensor(s, dtype=dt, requires_grad=True)
        r, so = rank_sort_loss(x, torch.tensor(y, dtype=dt), 0.5)
        (r + so).backward()
        assert r.dtype == dt and x.grad.dtype == dt
        out.append((r.item(), so.item(), x.grad.double()))
    assert out[0][0] == pytest.approx(out[1][0], abs=1e-6)
    assert out[0][1] == pytest.approx(out[1][1], abs=1e-6)
    torch.testing.assert_close(out[0][2], out[1][2], rtol=0, atol=1e-6)
