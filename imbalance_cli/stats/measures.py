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
    """Imbalance ratio max_k n_k / min_k n_k over the used classes (n_k > 0); Oksuz et al., TPAMI
    2021, §9.2. None if none used."""
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
    """Kullback-Leibler divergence KL(p || u) = sum_k p_k log(K p_k) = log K - H (nats) over used classes; Oksuz et al.,
    TPAMI 2021, §9.2."""
    n = _used(counts)
    k = n.size
    if k == 0:
        return None
    p = n / n.sum()
    return max(0.0, float((p * np.log(k * p)).sum()))


def coefficient_of_variation(counts) -> float | None:
    """Coefficient of variation std(n) / mean(n), population std (ddof 0), over used classes; Oksuz et al.,
    TPAMI 2021, §9.2."""
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
    """TV distance of a histogram (any shape; every bin counts) to uniform over its bins; Oksuz et al.,
    TPAMI 2021, §9.2."""
    return tv_to_uniform(np.asarray(counts).reshape(-1), used_only=False)


# ------------------------------------------------------------------------------------------
# chance levels: what a perfectly balanced dataset of the same size shows by sampling alone
# ------------------------------------------------------------------------------------------
def expected_histogram_tv(n: int, bins: int) -> float | None:
    """Expected TV distance to uniform of the histogram of ``n`` draws spread uniformly over ``bins`` bins.

    Exact: each bin's count is X ~ Binomial(n, p = 1/B), so E[TV] = (B / 2n) E|X - n p|, with the binomial's
    mean absolute deviation from De Moivre's formula E|X - np| = 2 (m + 1) C(n, m + 1) p^(m+1) (1 - p)^(n-m),
    m = floor(n p) (taken in logs, so any n works). A measured TV at or below this level says nothing about
    imbalance: a balanced dataset of this size shows it by chance. None when ``n`` < 1.
    """
    n, bins = int(n), int(bins)
    if n < 1 or bins < 1:
        return None
    if bins == 1:
        return 0.0
    p = 1.0 / bins
    m = math.floor(n * p)
    if m + 1 > n:  # n p is an integer equal to n: impossible for bins > 1
        return 0.0
    log_mad = (
        math.log(2.0 * (m + 1))
        + math.lgamma(n + 1)
        - math.lgamma(m + 2)
        - math.lgamma(n - m)
        + (m + 1) * math.log(p)
        + (n - m) * math.log1p(-p)
    )
    return min(1.0, bins / (2.0 * n) * math.exp(log_mad))


def _gini_rows(counts: np.ndarray) -> np.ndarray:
    """:func:`gini` of every row of a 2-D count array (over each row's used classes), vectorised."""
    n = np.sort(np.asarray(counts, dtype=np.float64), axis=1)
    k = (n > 0).sum(axis=1).astype(np.float64)
    total = n.sum(axis=1)
    rank = np.arange(1, n.shape[1] + 1, dtype=np.float64)[None, :] - (n.shape[1] - k)[:, None]  # ranks of used
    with np.errstate(invalid="ignore", divide="ignore"):
        g = 2.0 * (rank * n).sum(axis=1) / (k * total) - (k + 1.0) / k
    return np.where(k > 0, np.maximum(g, 0.0), np.nan)


#: Draws of the seeded Monte Carlo behind the chance levels' p-values.
CHANCE_DRAWS = 1000


def histogram_tv_chance(
    n: int, bins: int, value: float | None = None, draws: int = CHANCE_DRAWS, seed: int = 0
) -> tuple[float | None, float | None]:
    """``(expected TV, p-value)`` of a histogram of ``n`` boxes over ``bins`` bins against a balanced dataset of
    the same size: the exact expectation (:func:`expected_histogram_tv`) and the share of ``draws`` seeded
    balanced samples whose TV reaches ``value`` (None without a value)."""
    expected = expected_histogram_tv(n, bins)
    if expected is None or value is None:
        return expected, None
    rng = np.random.default_rng(seed)
    sims = rng.multinomial(int(n), np.full(int(bins), 1.0 / int(bins)), size=draws) / float(n)
    tv = 0.5 * np.abs(sims - 1.0 / int(bins)).sum(axis=1)
    return expected, float(np.mean(tv >= value - 1e-12))


def gini_chance(
    n: int, k: int, value: float | None = None, draws: int = CHANCE_DRAWS, seed: int = 0
) -> tuple[float | None, float | None]:
    """``(expected Gini, p-value)`` of ``n`` instances over ``k`` classes against a balanced dataset of the same
    size (each instance's class uniform; :func:`gini` over the classes a draw uses), by seeded Monte Carlo."""
    n, k = int(n), int(k)
    if n < 1 or k < 1:
        return None, None
    if k == 1:
        return 0.0, (None if value is None else float(value <= 1e-12))
    rng = np.random.default_rng(seed)
    g = _gini_rows(rng.multinomial(n, np.full(k, 1.0 / k), size=draws))
    return float(np.nanmean(g)), None if value is None else float(np.mean(g >= value - 1e-12))


def expected_gini(n: int, k: int, draws: int = 200, seed: int = 0) -> float | None:
    """Mean Gini coefficient (over used classes, as :func:`gini`) of ``n`` instances drawn uniformly over ``k``
    classes: the Gini a balanced dataset of this size shows by chance (seeded Monte Carlo, ``draws`` samples)."""
    return gini_chance(n, k, None, draws=draws, seed=seed)[0]
