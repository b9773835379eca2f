"""Imbalance measures (survey §9.2) against hand-computed values and second, naive implementations."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imbalance_cli.stats import measures as M


def naive(counts):
    """Straight-from-definition versions: pairwise Gini, explicit sums."""
    n = [float(c) for c in counts if c > 0]
    k = len(n)
    if k == 0:
        return None
    total = sum(n)
    mean = total / k
    p = [x / total for x in n]
    gini = sum(abs(a - b) for a in n for b in n) / (2 * k * k * mean)
    h = -sum(q * math.log(q) for q in p)
    return {
        "imbalance_ratio": max(n) / min(n),
        "gini": gini,
        "normalized_entropy": h / math.log(k) if k > 1 else None,
        "tv_to_uniform": 0.5 * sum(abs(q - 1 / k) for q in p),
        "kl_to_uniform": sum(q * math.log(q * k) for q in p),
        "cv": math.sqrt(sum((x - mean) ** 2 for x in n) / k) / mean,
    }


def test_two_classes_by_hand():
    # counts (1, 3) plus an unused class: p = (1/4, 3/4), K = 2
    m = M.class_measures([1, 0, 3])
    assert m["classes_used"] == 2
    assert m["imbalance_ratio"] == pytest.approx(3.0)
    assert m["gini"] == pytest.approx(0.25)  # (|1-3| + |3-1|) / (2 * 4 * 2)
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert m["normalized_entropy"] == pytest.approx(h / math.log(2))
    assert m["tv_to_uniform"] == pytest.approx(0.25)
    assert m["kl_to_uniform"] == pytest.approx(0.25 * math.log(0.5) + 0.75 * math.log(1.5))
    assert m["cv"] == pytest.approx(0.5)  # population std 1, mean 2


def test_edge_cases():
    for empty in ([], [0, 0]):
        m = M.class_measures(empty)
        assert all(m[k] is None for k in M.MEASURE_NAMES)
        assert m["classes_used"] == 0
    one = M.class_measures([0, 7])
    assert one["imbalance_ratio"] == 1.0 and one["gini"] == 0.0 and one["tv_to_uniform"] == 0.0
    assert one["kl_to_uniform"] == 0.0 and one["cv"] == 0.0 and one["normalized_entropy"] is None
    balanced = M.class_measures([5, 5, 5, 5])
    assert balanced["gini"] == pytest.approx(0.0) and balanced["normalized_entropy"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        M.gini([1, -1])


def test_histogram_tv_counts_empty_bins():
    # 4 cells of 16 hold 1/4 each: TV = 1/2 (4 * (1/4 - 1/16) + 12 * 1/16) = 0.75
    h = np.zeros((4, 4))
    h[0, 0] = h[1, 1] = h[2, 2] = h[0, 1] = 1
    assert M.histogram_tv(h) == pytest.approx(0.75)
    assert M.histogram_tv([3, 3, 3]) == pytest.approx(0.0)
    assert M.histogram_tv([0, 0]) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40))
def test_against_naive_definitions(counts):
    got = M.class_measures(counts)
    want = naive(counts)
    if want is None:
        assert got["gini"] is None
        return
    for key, value in want.items():
        if value is None:
            assert got[key] is None
        else:
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    k = got["classes_used"]
    assert 0.0 <= got["tv_to_uniform"] <= 1 - 1 / k + 1e-12
    if k > 1:  # KL(p || u) = log K - H
        assert got["kl_to_uniform"] == pytest.approx(math.log(k) * (1 - got["normalized_entropy"]), abs=1e-9)
