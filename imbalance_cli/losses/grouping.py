"""BAGS grouping of classes by training-instance count, shared by the losses and the statistics.

Li et al., "Overcoming Classifier Imbalance for Long-tail Object Detection with Balanced Group
Softmax", CVPR 2020, §4.2, Eq. 3: class ``j`` belongs to group ``n`` when ``s_l^n <= N_j < s_h^n``;
the default edges 0, 10, 100, 1000, inf give groups 1..4 (group 0 is the background group).

This module is the bottom of the dependency graph for both ``imbalance_cli.losses`` and
``imbalance_cli.stats`` (it imports only numpy), so neither package has to import the other.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

DEFAULT_BAGS_EDGES: tuple[float, ...] = (0, 10, 100, 1000, math.inf)

__all__ = ["DEFAULT_BAGS_EDGES", "bags_groups"]


def bags_groups(instance_counts: Sequence[int] | np.ndarray, edges: Sequence[float] = DEFAULT_BAGS_EDGES) -> np.ndarray:
    """BAGS group index (1..N) per class: ``s_l^n <= N_j < s_h^n`` (Li et al., CVPR 2020, Eq. 3).

    ``edges`` are the N + 1 increasing boundaries ``s_l^1 < s_h^1 = s_l^2 < ... < s_h^N``.
    Counts below the first edge or at/above the last raise ``ValueError``.
    """
    counts = np.asarray(instance_counts, dtype=np.float64)
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ValueError(f"BAGS edges must be at least two strictly increasing numbers, got {list(edges)}")
    group = np.searchsorted(e, counts, side="right")  # 1..N for in-range counts
    if np.any(group < 1) or np.any(group > len(e) - 1):
        raise ValueError(f"instance counts fall outside the BAGS edges {list(edges)}")
    return group.astype(np.int64)
