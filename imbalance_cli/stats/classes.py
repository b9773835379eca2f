"""Per-class counts and the long-tail groupings built on them.

* instances / images per class: valid, non-crowd boxes only (Oksuz et al., Imbalance Problems in Object
  Detection, TPAMI 2021, Fig. 5a);
* LVIS frequency groups from image counts: rare <= 10 images, common 11-100, frequent > 100
  (Gupta et al., LVIS, CVPR 2019, §3), thresholds set on LVIS v1's 100,170 training images, so
  :func:`lvis_frequency_scope` says when they are meaningful for another dataset;
* BAGS groups by training-instance count with edges ``[s_l, s_h)`` (Li et al., Balanced Group Softmax, CVPR 2020, Eq. 3:
  default edges 0, 10, 100, 1000, inf -> groups 1..4; group 0 is background).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from imbalance_cli.data.arrays import DistinctInts
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.losses.grouping import DEFAULT_BAGS_EDGES, bags_groups  # noqa: F401  (re-exported here)

#: Boxes read at a time by the per-class and per-image counts (their temporaries stay this size).
BOX_BLOCK = 1 << 20
LVIS_RARE_MAX = 10
LVIS_COMMON_MAX = 100
#: Training images of LVIS v1 (Gupta et al., LVIS, CVPR 2019; lvis_v1_train.json), on which the
#: rare/common/frequent thresholds were set.
LVIS_V1_TRAIN_IMAGES = 100_170
#: Below this share of LVIS v1's training images the LVIS thresholds are not shown as groups.
LVIS_MIN_SHARE = 0.1


def class_counts(dataset: Dataset, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Instances and images per category row (int64 arrays of length ``num_categories``).

    Counts valid boxes only unless ``mask`` (a boolean mask over boxes) is given.
    An image counts once per class however many boxes of that class it holds (:func:`image_class_pairs`).
    """
    if mask is None:
        mask = dataset.valid_mask()
    n_cat = dataset.num_categories
    instances = np.zeros(n_cat, np.int64)
    for a in range(0, len(mask), BOX_BLOCK):
        instances += np.bincount(dataset.box_category[a : a + BOX_BLOCK][mask[a : a + BOX_BLOCK]], minlength=n_cat)
    if not n_cat:
        return instances, np.zeros(0, np.int64)
    return instances, np.bincount(image_class_pairs(dataset, mask) % n_cat, minlength=n_cat).astype(np.int64)


def image_class_pairs(dataset: Dataset, mask: np.ndarray) -> np.ndarray:
    """The sorted distinct ``image row * num_categories + category row`` of the boxes selected by ``mask``.

    The boxes are read in blocks (:data:`BOX_BLOCK`) into :class:`~imbalance_cli.data.arrays.DistinctInts`, so the
    temporaries stay the size of a block and of the distinct pairs, not of every box.
    """
    n_cat = dataset.num_categories
    pairs = DistinctInts(dataset.num_images * n_cat)
    for a in range(0, len(mask), BOX_BLOCK):
        keep = mask[a : a + BOX_BLOCK]
        pairs.add(dataset.box_image[a : a + BOX_BLOCK][keep] * n_cat + dataset.box_category[a : a + BOX_BLOCK][keep])
    return pairs.values()


def boxes_per_image(dataset: Dataset, mask: np.ndarray) -> np.ndarray:
    """Boxes selected by ``mask`` per image (int64, length ``num_images``), read in blocks of :data:`BOX_BLOCK`."""
    out = np.zeros(dataset.num_images, np.int64)
    for a in range(0, len(mask), BOX_BLOCK):
        out += np.bincount(dataset.box_image[a : a + BOX_BLOCK][mask[a : a + BOX_BLOCK]], minlength=dataset.num_images)
    return out


def lvis_frequency(image_counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """LVIS frequency letter per class from its image count: 'r' (<= 10), 'c' (11-100), 'f' (> 100)."""
    counts = np.asarray(image_counts)
    out = np.full(counts.shape, "f", dtype=object)
    out[counts <= LVIS_COMMON_MAX] = "c"
    out[counts <= LVIS_RARE_MAX] = "r"
    return out


def lvis_frequency_scope(num_images: int | None) -> dict:
    """Whether LVIS's frequency groups say anything about a dataset of ``num_images`` images.

    LVIS's rare (<= 10 images), common (11-100) and frequent (> 100) groups are thresholds on the
    number of training images holding a class, set on LVIS v1's 100,170 training images (Gupta et
    al., CVPR 2019). On a dataset far smaller than that, nearly every class falls under "rare" by
    size alone (the 79-image COCO sample: 76 of 80 classes), which says nothing about its long tail.
    The groups computed from the dataset's image counts are therefore ``shown`` when it has at least
    ``LVIS_MIN_SHARE`` (10%) of LVIS v1's training images and ``hidden`` otherwise (a file's own
    LVIS ``frequency`` field, as LVIS val files carry, is shown apart); the thresholds are never
    rescaled, since LVIS defines no rule for that. Without an image total (``None``, a
    category-statistics file) the groups are shown. Returns ``{thresholds,
    rare_max_images, common_max_images, reference_images, images, share_of_reference, shown,
    reason}``.
    """
    share = None if num_images is None else float(num_images) / LVIS_V1_TRAIN_IMAGES
    if share is None:
        shown, reason = True, "image total unknown (category statistics): LVIS thresholds applied unchanged"
    elif share >= LVIS_MIN_SHARE:
        shown, reason = (
            True,
            (f"{num_images:,} images, {100 * share:.0f}% of LVIS v1 train: LVIS thresholds applied unchanged"),
        )
    else:
        shown = False
        reason = (
            f"hidden: LVIS's thresholds assume LVIS v1's {LVIS_V1_TRAIN_IMAGES:,} training images; this "
            f"dataset has {num_images:,} ({100 * share:.2g}%), under "
            f"{100 * LVIS_MIN_SHARE:.0f}%, so the groups would mostly reflect its size"
        )
    return {
        "thresholds": "lvis",
        "rare_max_images": LVIS_RARE_MAX,
        "common_max_images": LVIS_COMMON_MAX,
        "reference_images": LVIS_V1_TRAIN_IMAGES,
        "images": None if num_images is None else int(num_images),
        "share_of_reference": share,
        "shown": shown,
        "reason": reason,
    }
