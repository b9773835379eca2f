"""Per-class counts and the long-tail groupings built on them.

* instances / images per class: valid, non-crowd boxes only (survey seed 000, Fig. 5a);
* LVIS frequency groups from image counts: rare <= 10 images, common 11-100, frequent > 100
  (Gupta et al., LVIS, CVPR 2019, §3);
* BAGS groups by training-instance count with edges ``[s_l, s_h)`` (seed 002, Eq. 3:
  default edges 0, 10, 100, 1000, inf -> groups 1..4; group 0 is background).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.losses.grouping import DEFAULT_BAGS_EDGES, bags_groups  # noqa: F401  (re-exported)

LVIS_RARE_MAX = 10
LVIS_COMMON_MAX = 100


def class_counts(dataset: Dataset, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Instances and images per category row (int64 arrays of length ``num_categories``).

    Counts valid boxes only unless ``mask`` (a boolean mask over boxes) is given.
    An image counts once per class however many boxes of that class it holds.
    """
    if mask is None:
        mask = dataset.valid_mask()
    cats = dataset.box_category[mask]
    imgs = dataset.box_image[mask]
    n_cat = dataset.num_categories
    instances = np.bincount(cats, minlength=n_cat).astype(np.int64)
    pairs = np.unique(imgs.astype(np.int64) * n_cat + cats)
    images = np.bincount(pairs % n_cat, minlength=n_cat).astype(np.int64) if n_cat else np.zeros(0, np.int64)
    return instances, images


def lvis_frequency(image_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """LVIS frequency letter per class from its image count: 'r' (<= 10), 'c' (11-100), 'f' (> 100)."""
    counts = np.asarray(image_counts)
    out = np.full(counts.shape, "f", dtype=object)
    out[counts <= LVIS_COMMON_MAX] = "c"
    out[counts <= LVIS_RARE_MAX] = "r"
    return out


