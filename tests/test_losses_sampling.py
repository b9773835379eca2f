"""Samplers (survey §4.1.1) and task balancing (RS Eq. S17, survey Eq. 24)."""

import pytest
import torch

from imbalance_cli.losses import (
    SAMPLERS,
    ALRPSelfBalance,
    fixed_weights,
    guided_loss,
    iou_balanced_sampler,
    none_sampler,
    ohem_sampler,
    random_sampler,
    sample_sizes,
    self_balance,
)


def _masks(n=200, n_pos=10, n_ign=5):
    pos = torch.zeros(n, dtype=torch.bool)
    pos[:n_pos] = True
    neg = torch.ones(n, dtype=torch.bool)
    neg[: n_pos + n_ign] = False
    return pos, neg


def test_sample_sizes_rules():
    assert sample_sizes(10, 1000, None, 0.25) == (10, 30)  # 3 negatives per positive
    assert sample_sizes(0, 1000, None, 0.25, min_negatives=16) == (0, 16)
    assert sample_sizes(500, 1000, 256, 0.5) == (128, 128)  # Faster R-CNN RPN
    assert sample_sizes(20, 1000, 256, 0.5) == (20, 236)  # padded with negatives
    with pytest.raises(ValueError):
        sample_sizes(1, 1, None, 0.0)


def test_none_and_random_sampler():
    pos, neg = _masks()
    assert none_sampler(pos, neg).sum() == 195
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    m1 = random_sampler(pos, neg, positive_fraction=0.25, generator=g1)
    m2 = random_sampler(pos, neg, positive_fraction=0.25, generator=g2)
    assert torch.equal(m1, m2)  # reproducible
    assert m1[pos].all() and (m1 & neg).sum() == 30
    assert not m1[10:15].any()  # ignored anchors never sampled
    m3 = random_sampler(pos, neg, num_samples=8, positive_fraction=0.5, generator=g1)
    assert (m3 & pos).sum() == 4 and (m3 & neg).sum() == 4


def test_ohem_takes_highest_losses():
    pos, neg = _masks()
    losses = torch.arange(200, dtype=torch.float32)
    m = ohem_sampler(pos, losses, neg, positive_fraction=0.25)
    chosen_neg = torch.nonzero(m & neg).squeeze(1)
    assert chosen_neg.tolist() == list(range(170, 200))
    assert m[pos].all()


def test_iou_balanced_equal_per_bin():
    pos = torch.zeros(400, dtype=torch.bool)
    pos[:10] = True
    ious = torch.zeros(400)
    # negatives: 300 with IoU in [0, 0.1), 60 in [0.1, 0.2), 30 in [0.2, 0.3]
    ious[10:310] = torch.linspace(0.0, 0.099, 300)
    ious[310:370] = torch.linspace(0.1, 0.199, 60)
    ious[370:400] = torch.linspace(0.2, 0.3, 30)
    m = iou_balanced_sampler(pos, ious, positive_fraction=0.25, num_bins=3, generator=torch.Generator().manual_seed(0))
    sel = ious[m & ~pos]
    assert sel.numel() == 30
    counts = [int(((sel >= lo) & (sel < hi)).sum()) for lo, hi in [(0, 0.1), (0.1, 0.2), (0.2, 0.31)]]
    assert counts == [10, 10, 10]
    # random sampling would mostly pick the low-IoU negatives
    # shortfall: 90 negatives wanted, bin 3 has 30 -> all of it, rest filled from the others
    m = iou_balanced_sampler(
        pos, ious, num_samples=100, positive_fraction=0.1, num_bins=3, generator=torch.Generator().manual_seed(0)
    )
    sel = ious[m & ~pos]
    assert sel.numel() == 90 and int((sel >= 0.2).sum()) == 30


def test_sampler_registry():
    assert set(SAMPLERS) == {"none", "random", "ohem", "iou-balanced"}


def test_self_balance_and_guided_loss():
    c = torch.tensor(0.6, requires_grad=True)
    b = torch.tensor(0.2, requires_grad=True)
    total = self_balance(c, b)  # RS Eq. S17: lambda = L_RS / L_box = 3
    assert total.item() == pytest.approx(1.2)
    total.backward()
    assert c.grad.item() == pytest.approx(1.0) and b.grad.item() == pytest.approx(3.0)
    c.grad = b.grad = None
    total = guided_loss(c, b, w_reg=2.0)  # survey Eq. 24: cls scaled by w_reg L_reg / L_cls = 2/3
    assert total.item() == pytest.approx(0.8)
    total.backward()
    assert c.grad.item() == pytest.approx(0.4 / 0.6) and b.grad.item() == pytest.approx(2.0)
    assert fixed_weights({"cls": c, "box": b}, {"box": 5.0}).item() == pytest.approx(1.6)
    with pytest.raises(ValueError):
        fixed_weights({"cls": c}, {"bbox": 1.0})


def test_alrp_self_balance_epoch_update():
    sb = ALRPSelfBalance()
    assert sb(torch.tensor(0.5), torch.tensor(0.1)).item() == pytest.approx(0.5 + 50 * 0.1)
    sb(torch.tensor(0.3), torch.tensor(0.3))
    assert sb.end_epoch() == pytest.approx((0.4 + 0.2) / 0.2)
    state = sb.state_dict()
    other = ALRPSelfBalance()
    other.load_state_dict(state)
    assert other.weight == sb.weight


def test_samplers_accept_matcher_labels():
    labels = torch.full((50,), -1, dtype=torch.int64)
    labels[:4] = torch.tensor([0, 3, 1, 0])  # matched box indices
    labels[4:9] = -2  # ignored
    m = random_sampler(labels, positive_fraction=0.5, generator=torch.Generator().manual_seed(0))
    assert m[:4].all() and not m[4:9].any() and int(m.sum()) == 8
    assert none_sampler(labels).sum() == 45
