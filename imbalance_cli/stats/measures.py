"""How far a distribution is from balanced: the imbalance measures of the report.

The survey (Oksuz et al., TPAMI 2021, §9.2 "Measuring and Identifying Imbalance") names the question
("How can we quantify how imbalanced a distribution is?") and takes the uniform
distribution as the balanced one for properties such as the class distribution. It gives
no single formula, so the report offers the standard ones below, all computed on a vector
of non-negative counts ``n_1..n_K``:

* class-instance distribution (survey §4.2.1, Fig. 5a), over the **used** classes only
  (``n_k > 0``; K = number of used classes, N = sum n_k, p_k = n_k / N):

  - imbalance ratio            IR  = max_k n_k / min_k n_k
  - Gini coefficient           G   = sum_i sum_j |n_i - n_j| / (2 K^2 mean(n))
  - normalised entropy         H/log K, with H = -sum_k p_k log p_k       (1 = balanced)
  - total-variation distance   TV  = 1/2 sum_k |p_k - 1/K|                 (0 = balanced)
  - Kullback-Leibler distance  KL(p || u) = sum_k p_k log(K p_k) = log K - H
  - coefficient of variation   CV  = std(n) / mean(n), population std (divide by K)

* histograms (scale, survey §5.1 Fig. 7; location, §6.3 Fig. 13): TV distance of the
  histogram's normalised counts to the uniform distribution over **all** its bins,
  1/2 sum_b |q_b - 1/B|.

Edge cases: no used class (or an empty histogram) -> every measure is ``None``. One used
class: IR = 1, Gini = 0, TV = 0, KL = 0, CV = 0, and the normalised entropy is ``None``
(0/0: log 1 = 0).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

MEASURE_NAMES = ("imbalance_ratio", "gini", "normalized_entropy", "tv_to_uniform", "kl_to_uniform", "cv")


def _used(counts: Sequence[float] | np.ndarray) -> np.ndarray:
    n = np.asarray(counts, dtype=np.float64).reshape(-1)
    if np.any(n < 0) or not np.all(np.isfinite(n)):
        raise ValueError("counts must be finite and non-negative")
    return n[n > 0]


def imbalance_ratio(counts) -> float | None:
    """Imbalance ratio max_k n_k / min_k n_k over the used classes (n_k > 0); Oksuz et al., TPAMI 2021, §9.2. None if none used."""
    n = _used(counts)
    return None if n.size == 0 else float(n.max() / n.min())


def gini(counts) -> float | None:
    """Gini coefficient G = sum_i sum_j |n_i - n_j| / (2 K^2 mean(n)) over used classes; Oksuz et al., TPAMI 2021, §9.2.

    Computed in O(K log K) from the sorted counts n_(1) <= ... <= n_(K):
    G = 2 sum_i i n_(i) / (K sum n) - (K + 1) / K. 0 = all equal; approaches 1 when one class has all.
    """
    n = np.sort(_used(counts))
    k = n.size
    if k == 0:
        return None
    i = np.arange(1, k + 1, dtype=np.float64)
    g = 2.0 * float(np.dot(i, n)) / (k * float(n.sum())) - (k + 1.0) / k
    return max(0.0, g)


def normalized_entropy(counts) -> float | None:
    """Normalised Shannon entropy H / log K of p_k = n_k / N over used classes; Oksuz et al., TPAMI 2021, §9.2.

    1 = uniform. None when fewer than two classes are used (log 1 = 0).
    """
    n = _used(counts)
    k = n.size
    if k < 2:
        return None
    p = n / n.sum()
    h = float(-(p * np.log(p)).sum())
    return h / math.log(k)


def tv_to_uniform(counts, *, used_only: bool = True) -> float | None:
    """Total-variation distance 1/2 sum_k |p_k - 1/K| to the uniform distribution; Oksuz et al., TPAMI 2021, §9.2.

    ``used_only=True`` (class distributions) keeps only n_k > 0; ``used_only=False``
    (histograms) uses every bin, so empty bins count as missing mass. None when the total is 0.
    """
    if used_only:
        n = _used(counts)
    else:
        n = np.asarray(counts, dtype=np.float64).reshape(-1)
        if np.any(n < 0) or not np.all(np.isfinite(n)):
            raise ValueError("counts must be finite and non-negative")
    total = float(n.sum()) if n.size else 0.0
    if total <= 0:
        return None
    p = n / total
    return 0.5 * float(np.abs(p - 1.0 / n.size).sum())


def kl_to_uniform(counts) -> float | None:
    """Kullback-Leibler divergence KL(p || u) = sum_k p_k log(K p_k) = log K - H (nats) over used classes; Oksuz et al., TPAMI 2021, §9.2."""
    n = _used(counts)
    k = n.size
    if k == 0:
        return None
    p = n / n.sum()
    return max(0.0, float((p * np.log(k * p)).sum()))


def coefficient_of_variation(counts) -> float | None:
    """Coefficient of variation std(n) / mean(n), population std (ddof 0), over used classes; Oksuz et al., TPAMI 2021, §9.2."""
    n = _used(counts)
    if n.size == 0:
        return None
    return float(n.std() / n.mean())


def class_measures(counts) -> dict:
    """All class-distribution measures of the report's ``measures`` block (names in :data:`MEASURE_NAMES`)."""
    return {
        "imbalance_ratio": imbalance_ratio(counts),
        "gini": gini(counts),
        "normalized_entropy": normalized_entropy(counts),
        "tv_to_uniform": tv_to_uniform(counts),
        "kl_to_uniform": kl_to_uniform(counts),
        "cv": coefficient_of_variation(counts),
        "classes_used": int(_used(counts).size),
    }


def histogram_tv(counts) -> float | None:
    """TV distance of a histogram (any shape; every bin counts) to uniform over its bins; Oksuz et al., TPAMI 2021, §9.2."""
    return tv_to_uniform(np.asarray(counts).reshape(-1), used_only=False)
