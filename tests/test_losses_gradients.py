"""Gradients of the classification and long-tail losses against their closed forms (written out here), to 1e-10.

Complements the value tests: where a loss only had ``gradcheck`` (differentiability), these pin the gradient's value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from imbalance_cli.losses import (
    bags_label2binlabel,
    bags_loss,
    bags_num_outputs,
    bags_pred_slice,
    class_balanced,
    class_balanced_weights,
    ecm_loss,
    focal_loss,
    sigmoid_ce,
    softmax_ce,
)


def sig(x):
    return 1 / (1 + np.exp(-x))


def _data(seed, n=6, c=4):
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=1.5, size=(n, c))
    labels = rng.integers(0, c + 1, n)
    t = np.zeros((n, c + 1))
    t[np.arange(n), labels] = 1
    return x, t[:, :c], labels


def _grad(fn, x):
    xt = torch.tensor(x, requires_grad=True)
    fn(xt).backward()
    return xt.grad.numpy()


def test_sigmoid_and_softmax_ce_gradients():
    x, t, labels = _data(1)
    np.testing.assert_allclose(
        _grad(lambda z: sigmoid_ce(z, torch.tensor(t), reduction="sum"), x), sig(x) - t, atol=1e-12
    )
    z = np.random.default_rng(2).normal(size=(5, 4))
    lab = np.array([0, 3, 1, -1, 2])
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    oh = np.zeros_like(p)
    oh[np.arange(5)[lab >= 0], lab[lab >= 0]] = 1
    expect = (p - oh) * (lab >= 0)[:, None] / 4  # mean over the 4 non-ignored rows
    np.testing.assert_allclose(
        _grad(lambda v: softmax_ce(v, torch.tensor(lab), reduction="mean"), z), expect, atol=1e-12
    )


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (-1.0, 1.5)])
def test_focal_gradient_closed_form(alpha, gamma):
    x, t, _ = _data(3)
    p = sig(x)
    a_pos = alpha if alpha >= 0 else 1.0
    a_neg = 1 - alpha if alpha >= 0 else 1.0
    g_pos = a_pos * (1 - p) ** gamma * (gamma * p * np.log(p) - (1 - p))
    g_neg = a_neg * p**gamma * (p - gamma * (1 - p) * np.log(1 - p))
    expect = t * g_pos + (1 - t) * g_neg
    got = _grad(lambda z: focal_loss(z, torch.tensor(t), alpha=alpha, gamma=gamma, reduction="sum"), x)
    np.testing.assert_allclose(got, expect, atol=1e-10)


@pytest.mark.parametrize("ratio", [None, 6.3313])
def test_ecm_gradient_closed_form(ratio):
    # d/df of w_c BCE(sigmoid(2 f + m+ - m-), y) = 2 w_c (sigmoid(2 f + m+ - m-) - y), / B
    counts = [100.0, 10.0, 1.0]
    n = counts + ([ratio * sum(counts)] if ratio else [])
    total = sum(n)
    ch = len(n)
    rng = np.random.default_rng(5)
    f = rng.normal(size=(4, ch))
    labels = np.array([0, 1, 2, 3])
    y = np.zeros((4, 4))
    y[np.arange(4), labels] = 1
    y = y[:, :ch]
    shift = np.empty(ch)
    w = np.empty(ch)
    for c in range(ch):
        qp, qn = n[c] ** 0.25, (total - n[c]) ** 0.25
        shift[c] = math.log((qp + qn) / qn) - math.log((qp + qn) / qp)
        a = (total - n[c]) / n[c]
        w[c] = a * math.log((1 + a) / a)
    expect = 2 * w * (sig(2 * f + shift) - y) / 4
    got = _grad(lambda z: ecm_loss(z, torch.tensor(labels), counts, ratio), f)
    np.testing.assert_allclose(got, expect, atol=1e-12)


def test_bags_gradient_per_group_mean():
    # every group's softmax-CE gradient (p - onehot) divided by the number of boxes that group uses
    counts = [5, 50, 500, 3]
    l2b, ps = bags_label2binlabel(counts), bags_pred_slice(counts)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, bags_num_outputs(ps)))
    labels = np.array([0, 1, 4, 4, 3])  # classes 0, 3 in group 1; 1 in group 2; group 3 (class 2) empty
    expect = np.zeros_like(x)
    for g in range(ps.shape[0]):
        s, ln = ps[g].tolist()
        tg = l2b[g, torch.tensor(labels)].numpy()
        use = np.ones(5, bool) if g == 0 else np.full(5, (tg > 0).any())
        if g > 0 and not (tg > 0).any():
            continue
        z = x[:, s : s + ln]
        p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        oh = np.zeros_like(p)
        oh[np.arange(5), tg] = 1
        expect[:, s : s + ln] += (p - oh) * use[:, None] / use.sum()
    got = _grad(lambda z: bags_loss(z, torch.tensor(labels), l2b, ps, beta=float("inf")), x)
    np.testing.assert_allclose(got, expect, atol=1e-12)


def test_class_balanced_sigmoid_gradient():
    counts = [2, 20, 200]
    x, t, labels = _data(7, c=3)
    w = class_balanced_weights(counts, 0.99)
    row = np.array([w[y] if y < 3 else 1.0 for y in labels])
    expect = (sig(x) - t) * row[:, None]
    got = _grad(lambda z: class_balanced(z, torch.tensor(t), counts, beta=0.99, loss="sigmoid", reduction="sum"), x)
    np.testing.assert_allclose(got, expect, atol=1e-12)
