"""An Objects365-v2-shaped synthetic dataset: 1.74 M images (full) or 174 k (tenth), ~14.6 boxes per image.

Shape taken from the dataset's published facts (Shao et al., "Objects365: A Large-Scale,
High-Quality Dataset for Object Detection", ICCV 2019; v2 train: 1,742,289 images, 25.4 M boxes,
365 classes): boxes per image negative-binomial with mean 14.6; classes drawn from a long tail
over 365 classes, ``p(rank) ~ rank^-0.6 exp(-rank / 70)`` (the most frequent class ~10% of boxes,
the rarest ~400 boxes at full size); image sizes from common camera / web sizes (long side 480-2048 px, aspect ratios
4:3, 3:2, 16:9, 1:1 and their portrait forms); box sizes log-uniform in sqrt(relative area)
from 0.01 to 0.9 with log-normal aspect ratios. No segmentations (Objects365 has none).

``dataset(n_images)`` builds the columnar :class:`~imbalance_cli.data.dataset.Dataset` directly
(for measuring the anchor pass apart from the loader); ``write(path, n_images)`` writes the
COCO-style JSON (422 MB at a tenth, 4.27 GB full) for end-to-end runs. Deterministic for a given seed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FULL_IMAGES = 1_742_289
TENTH_IMAGES = FULL_IMAGES // 10
BOXES_PER_IMAGE = 14.6
NUM_CLASSES = 365

_LONG = np.array([480, 500, 640, 683, 800, 1024, 1280, 1365, 1600, 2048])
_LONG_P = np.array([0.05, 0.08, 0.25, 0.07, 0.15, 0.22, 0.08, 0.04, 0.03, 0.03])
_ASPECT = np.array([4 / 3, 3 / 2, 16 / 9, 1.0])
_ASPECT_P = np.array([0.55, 0.2, 0.15, 0.1])


def columns(n_images: int, seed: int = 0) -> dict:
    """Column arrays: ``widths``, ``heights`` (n,), ``boxes`` xyxy float64 (N, 4), ``box_image``, ``box_category``."""
    rng = np.random.default_rng(seed)
    long_side = rng.choice(_LONG, size=n_images, p=_LONG_P)
    ar = rng.choice(_ASPECT, size=n_images, p=_ASPECT_P)
    portrait = rng.random(n_images) < 0.25
    short = np.round(long_side / ar).astype(np.int64)
    W = np.where(portrait, short, long_side).astype(np.float64)
    H = np.where(portrait, long_side, short).astype(np.float64)
    # negative binomial with mean 14.6 (dispersion r = 2: many images with few boxes, a tail of crowded ones)
    r = 2.0
    nb = rng.negative_binomial(r, r / (r + BOXES_PER_IMAGE), size=n_images)
    N = int(nb.sum())
    box_image = np.repeat(np.arange(n_images, dtype=np.int64), nb)
    ranks = np.arange(1, NUM_CLASSES + 1, dtype=np.float64)
    p = ranks**-0.6 * np.exp(-ranks / 70)  # head ~10% of boxes, rarest class ~400 boxes at full size
    p /= p.sum()
    box_category = rng.choice(NUM_CLASSES, size=N, p=p).astype(np.int64)
    Wb, Hb = W[box_image], H[box_image]
    rel = np.exp(rng.uniform(np.log(0.01), np.log(0.9), size=N))  # sqrt(relative area)
    asp = np.exp(rng.normal(0.0, 0.5, size=N))
    area = (rel**2) * Wb * Hb
    bw = np.minimum(np.sqrt(area * asp), Wb)
    bh = np.minimum(np.sqrt(area / asp), Hb)
    x1 = rng.random(N) * (Wb - bw)
    y1 = rng.random(N) * (Hb - bh)
    boxes = np.stack([np.round(x1, 2), np.round(y1, 2), np.round(x1 + bw, 2), np.round(y1 + bh, 2)], axis=1)
    return {"widths": W, "heights": H, "boxes": boxes, "box_image": box_image, "box_category": box_category}


def dataset(n_images: int = TENTH_IMAGES, seed: int = 0):
    """The synthetic dataset as a columnar ``Dataset`` (no JSON)."""
    from imbalance_cli.data.dataset import Dataset

    c = columns(n_images, seed)
    return Dataset(
        image_ids=np.arange(1, n_images + 1),
        widths=c["widths"],
        heights=c["heights"],
        boxes=c["boxes"],
        box_image=c["box_image"],
        box_category=c["box_category"],
        category_ids=np.arange(1, NUM_CLASSES + 1),
        category_names=[f"class_{i}" for i in range(1, NUM_CLASSES + 1)],
    )


def write(path: str | Path, n_images: int = TENTH_IMAGES, seed: int = 0, step: int = 100_000) -> Path:
    """Write the JSON once (reusing an existing file), streamed ``step`` images at a time.

    Every field the real Objects365 v2 train file carries, in its order and with its separators
    (Python ``json.dump``'s ``", "`` and ``": "``): images ``height, id, license, width, file_name,
    url``; annotations ``id, iscrowd, isfake, area, isreflected, bbox, image_id, category_id``;
    categories ``name, id``; a ``licenses`` list. Coordinates carry 2 decimals (the real file's
    carry up to 10): the tenth is 422 MB (issue 25 measured a 448 MB file of the same fields).
    """
    path = Path(path)
    if path.exists():
        return path
    c = columns(n_images, seed)
    b, bimg, bcat = c["boxes"], c["box_image"], c["box_category"]
    W, H = c["widths"].astype(np.int64), c["heights"].astype(np.int64)
    lic = np.random.default_rng(seed + 1).integers(1, 9, n_images)
    first = np.searchsorted(bimg, np.arange(0, n_images + step, step))
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        f.write('{"images": [')
        for s in range(0, n_images, step):
            f.write(
                (", " if s else "")
                + ", ".join(
                    '{"height": %d, "id": %d, "license": %d, "width": %d, "file_name": '
                    '"images/v2/patch%d/objects365_v2_%08d.jpg", "url": ""}'
                    % (H[i], i + 1, lic[i], W[i], i % 51, i + 1)
                    for i in range(s, min(n_images, s + step))
                )
            )
        f.write('], "annotations": [')
        for k in range(len(first) - 1):
            k0, k1 = int(first[k]), int(min(first[k + 1], len(b)))
            if k1 <= k0:
                continue
            bb = b[k0:k1]
            w, h = bb[:, 2] - bb[:, 0], bb[:, 3] - bb[:, 1]
            f.write(
                (", " if k0 else "")
                + ", ".join(
                    '{"id": %d, "iscrowd": 0, "isfake": 0, "area": %.2f, "isreflected": 0, '
                    '"bbox": [%.2f, %.2f, %.2f, %.2f], "image_id": %d, "category_id": %d}'
                    % (k0 + q + 1, w[q] * h[q], bb[q, 0], bb[q, 1], w[q], h[q], bimg[k0 + q] + 1, bcat[k0 + q] + 1)
                    for q in range(k1 - k0)
                )
            )
        f.write('], "categories": [')
        f.write(", ".join('{"name": "class_%d", "id": %d}' % (i, i) for i in range(1, NUM_CLASSES + 1)))
        f.write('], "licenses": [')
        f.write(", ".join('{"name": "License %d", "id": %d, "url": ""}' % (i, i) for i in range(1, 9)))
        f.write("]}")
    tmp.replace(path)
    return path


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="write the Objects365-shaped synthetic JSON")
    ap.add_argument("path")
    ap.add_argument("--images", type=int, default=TENTH_IMAGES)
    ap.add_argument("--scale", type=float, default=None, help="images as a fraction of the full 1,742,289")
    a = ap.parse_args()
    p = write(a.path, a.images if a.scale is None else int(round(FULL_IMAGES * a.scale)))
    print(p, f"{p.stat().st_size / 1e6:.0f} MB")
