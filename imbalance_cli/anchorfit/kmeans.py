"""k-means of box shapes with the ``1 - IoU`` distance of centred boxes (YOLOv2, Redmon & Farhadi, CVPR 2017, §2
"Dimension Clusters"): the start each search space takes from the boxes themselves."""

from __future__ import annotations

import numpy as np

#: Most box shapes clustered (a seeded sample of them beyond).
KMEANS_MAX_BOXES = 20_000


def kmeans_iou(wh: np.ndarray, k: int, rng: np.random.Generator, iterations: int = 30) -> np.ndarray:
    """k-means on box shapes with the distance ``1 - IoU`` of boxes sharing a centre (YOLOv2 §2).

    Seeded k-means++ initialisation (D² sampling with the same distance), Lloyd updates with the mean shape
    of each cluster; an emptied cluster keeps its centroid. Returns ``(k, 2)`` centroids sorted by area.
    """
    wh = np.asarray(wh, np.float64)
    k = max(1, min(int(k), len(wh)))

    def dist(a, c):
        inter = np.minimum(a[:, None, 0], c[None, :, 0]) * np.minimum(a[:, None, 1], c[None, :, 1])
        union = (a[:, 0] * a[:, 1])[:, None] + (c[:, 0] * c[:, 1])[None, :] - inter
        return 1.0 - inter / union

    cent = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        d = dist(wh, np.array(cent)).min(axis=1) ** 2
        p = d / d.sum() if d.sum() > 0 else None
        cent.append(wh[rng.choice(len(wh), p=p)])
    c = np.array(cent)
    for _ in range(iterations):
        a = dist(wh, c).argmin(axis=1)
        new = c.copy()
        for j in range(k):
            m = a == j
            if m.any():
                new[j] = wh[m].mean(axis=0)
        if np.allclose(new, c):
            break
        c = new
    return c[np.argsort(c[:, 0] * c[:, 1], kind="stable")]
