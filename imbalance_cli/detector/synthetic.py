"""``synthetic-lt``: a deterministic, long-tailed detection dataset rendered in numpy.

Every object is a filled shape whose **class is the combination of three attributes**:
shape (circle, square, triangle), colour (red, green, blue, yellow) and texture (solid,
striped) -> 24 classes named e.g. ``"blue_striped_triangle"``. A detector must therefore
learn a conjunction of features, and rare classes share every single attribute with
frequent ones (the setting the long-tail losses are designed for). Objects vary in scale
(10-56 px on a 128 px image by default), aspect (0.6-1.7), position and colour shade; the
background is smooth noise with grey distractor blobs that belong to no class.

Class frequencies of the **training split** follow a configurable long tail:

* ``"lvis"`` (default): the LVIS v1 train instance-count curve (1203 classes, read from the
  real category statistics) sampled at evenly spaced ranks and mapped log-linearly onto
  ``[min_instances, max_instances]``; the rare/common/frequent letters are then computed the
  LVIS way from the split's image counts (<= 10, 11-100, > 100 images).
* ``"exp"``: ``n_k = max_instances * (min/max)^(k/(C-1))`` (an exponential profile).
* ``"uniform"``: every class gets the same count.

The **held-out split** draws classes uniformly, so each class's AP is measured on a similar
number of instances (rare classes are rare in training only, as in the seeds' evaluation
protocols where APr is what matters).

Output (``write_synthetic_lt``): ``train.json`` / ``val.json`` in LVIS/COCO format (categories
carry ``frequency``, ``image_count``, ``instance_count``; images carry ``neg_category_ids`` and
``not_exhaustive_category_ids``; annotations ``bbox`` [x, y, w, h], ``area``, ``iscrowd``) plus
``images/*.png``, so ``imbalance stats/margins/groups`` work on it.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from imbalance_cli import progress
from imbalance_cli.data._io import read_json
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import atomic_path, write_json
from imbalance_cli.stats.classes import lvis_frequency

SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 75, 220),
    "yellow": (230, 205, 40),
}
TEXTURES = ("solid", "striped")

#: LVIS v1 train instance counts (sorted descending) are read from this file when available.
#: Bumped whenever rendering changes, so a cached copy from older code is regenerated.
GENERATOR_VERSION = 2

_LVIS_CAT_INFO = Path(__file__).resolve().parents[2] / "examples" / "data" / "lvis_v1_train_cat_info.json.gz"


def class_names() -> list[str]:
    """The 24 class names ``<colour>_<texture>_<shape>`` in class-index order."""
    return [f"{c}_{t}_{s}" for s in SHAPES for c in COLOURS for t in TEXTURES]


def class_attributes(k: int) -> tuple[str, str, str]:
    """``(shape, colour, texture)`` of class index ``k``."""
    n_c, n_t = len(COLOURS), len(TEXTURES)
    s = k // (n_c * n_t)
    c = (k // n_t) % n_c
    t = k % n_t
    return SHAPES[s], list(COLOURS)[c], TEXTURES[t]


@dataclass(frozen=True)
class SyntheticConfig:
    """Settings of ``synthetic-lt`` (all plain data; the same seed gives the same bytes)."""

    seed: int = 0
    image_size: int = 128
    train_images: int = 1600
    val_images: int = 400
    tail: str = "lvis"  # lvis | exp | uniform
    max_instances: int = 900
    min_instances: int = 3
    val_objects_per_image: float = 2.5
    min_object: int = 10
    max_object: int = 56
    max_objects_per_image: int = 6
    distractors: int = 2

    @property
    def num_classes(self) -> int:
        """Number of classes (shape x colour x texture)."""
        return len(SHAPES) * len(COLOURS) * len(TEXTURES)


def _lvis_curve() -> tuple[np.ndarray, float]:
    """LVIS v1 train instance counts sorted descending, and LVIS's instances per (class, image) pair.

    Falls back to a fitted power law (and 3.52) if the statistics file is not shipped.
    """
    if _LVIS_CAT_INFO.exists():
        with gzip.open(_LVIS_CAT_INFO, "rt") as f:
            info = json.load(f)
        inst = np.array([c["instance_count"] for c in info], dtype=np.float64)
        imgs = np.array([c["image_count"] for c in info], dtype=np.float64)
        return np.sort(inst)[::-1], float(inst.sum() / imgs.sum())
    ranks = np.arange(1, 1204, dtype=np.float64)
    return np.maximum(1.0, 50552.0 * ranks**-1.35), 3.52


def tail_counts(
    num_classes: int, tail: str = "lvis", max_instances: int = 900, min_instances: int = 3, knee: int = 150
) -> np.ndarray:
    """Training instances per class (int64, non-increasing in class rank) for a tail profile.

    ``lvis``: the LVIS v1 train instance-count curve at ``C`` evenly spaced ranks, divided by
    LVIS's mean instances per (class, image) pair (3.52; our images hold ~1 instance per class,
    so counts ~ image counts and the LVIS r/c/f thresholds land on the same ranks as in LVIS),
    the head above ``knee`` compressed as ``knee * (n / knee)^g`` so the largest class gets
    ``max_instances``, the tail clamped at ``min_instances``. ``exp``: geometric interpolation
    ``max * (min/max)^(k/(C-1))``. ``uniform``: ``max_instances`` each.
    Raises ``ValueError`` on a bad name or bounds.
    """
    if min_instances < 1 or max_instances < min_instances:
        raise ValueError(f"need 1 <= min_instances <= max_instances, got {min_instances}, {max_instances}")
    C = int(num_classes)
    if tail == "uniform":
        return np.full(C, max_instances, dtype=np.int64)
    if tail == "exp":
        k = np.arange(C, dtype=np.float64)
        return np.round(max_instances * (min_instances / max_instances) ** (k / max(C - 1, 1))).astype(np.int64)
    if tail == "lvis":
        curve, per_image = _lvis_curve()
        idx = np.round(np.linspace(0, len(curve) - 1, C)).astype(int)
        v = curve[idx] / per_image
        top = v.max()
        if top > knee and max_instances > knee:
            g = math.log(max_instances / knee) / math.log(top / knee)
            v = np.where(v > knee, knee * (v / knee) ** g, v)
        v = np.minimum(v, max_instances)
        return np.maximum(min_instances, np.round(v)).astype(np.int64)
    raise ValueError(f"unknown tail {tail!r}: use lvis, exp or uniform")


# ---------------------------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------------------------


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth low-frequency grey-ish noise (float32 HxWx3 in [0, 255])."""
    g = rng.uniform(0, 1, (5, 5, 3)).astype(np.float32)
    # bilinear upsample of the coarse grid
    xs = np.linspace(0, 4, size, dtype=np.float32)
    i0 = np.clip(np.floor(xs).astype(int), 0, 3)
    f = (xs - i0)[:, None]
    rows = g[i0] * (1 - f)[:, :, None] + g[i0 + 1] * f[:, :, None]  # (size, 5, 3)
    cols = rows[:, i0] * (1 - f.T)[:, :, None] + rows[:, i0 + 1] * f.T[:, :, None]
    base = 95 + 70 * cols.mean(axis=2, keepdims=True) + 25 * (cols - 0.5)
    return np.clip(base + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.float32)


def _shape_mask(shape: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (h, w) mask of a shape filling its ``w x h`` box (touching all four sides)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    if shape == "circle":
        return ((xx - cx) / max(w / 2.0, 0.5)) ** 2 + ((yy - cy) / max(h / 2.0, 0.5)) ** 2 <= 1.0
    if shape == "square":
        return np.ones((h, w), dtype=bool)
    # triangle: apex at the top (random horizontal position), base along the bottom row
    apex = rng.uniform(0.2, 0.8) * (w - 1)
    t = yy / max(h - 1, 1)
    left = apex * (1 - t)
    right = apex + (w - 1 - apex) * t
    return (xx >= left - 0.5) & (xx <= right + 0.5)


def _texture(texture: str, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Per-pixel brightness factor (h, w): 1 for solid, alternating dark stripes for striped."""
    if texture == "solid":
        return np.ones((h, w), dtype=np.float32)
    period = rng.uniform(4.0, 7.0)
    angle = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = (xx * math.cos(angle) + yy * math.sin(angle)) / period
    return np.where((phase % 1.0) < 0.5, 1.0, 0.35).astype(np.float32)


def _overlap(a, b) -> tuple[float, float]:
    """IoU and intersection over the smaller box's area of two xyxy boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    return (inter / union if union > 0 else 0.0), inter / max(min(area_a, area_b), 1e-9)


def render_image(classes: list[int], cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Render one image holding objects of ``classes``.

    Returns ``(image uint8 (S, S, 3), boxes float64 (n, 4) xyxy)``: each box is the tight box of
    the object's box (objects are placed with IoU <= 0.2 and at most 30% of the smaller box covered
    by any earlier one, so a later object can hide only a small part of an earlier one).
    """
    S = cfg.image_size
    img = _background(rng, S)
    for _ in range(cfg.distractors):  # grey blobs of no class
        w, h = (int(v) for v in rng.integers(cfg.min_object, cfg.max_object, 2))
        x0, y0 = int(rng.integers(0, S - w + 1)), int(rng.integers(0, S - h + 1))
        m = _shape_mask(SHAPES[int(rng.integers(0, len(SHAPES)))], w, h, rng)
        grey = rng.uniform(60, 200)
        img[y0 : y0 + h, x0 : x0 + w][m] = grey + rng.normal(0, 4, (int(m.sum()), 1))
    boxes: list[tuple[float, float, float, float]] = []
    for k in classes:
        shape, colour, texture = class_attributes(k)
        for _attempt in range(30):
            side = rng.uniform(cfg.min_object, cfg.max_object)
            aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.7)))
            w = int(np.clip(round(side * math.sqrt(aspect)), cfg.min_object - 2, S))
            h = int(np.clip(round(side / math.sqrt(aspect)), cfg.min_object - 2, S))
            x0, y0 = int(rng.integers(0, S - w + 1)), int(rng.integers(0, S - h + 1))
            box = (float(x0), float(y0), float(x0 + w), float(y0 + h))
            if all(iou <= 0.2 and ioa <= 0.3 for iou, ioa in (_overlap(box, b) for b in boxes)):
                break
        m = _shape_mask(shape, w, h, rng)
        shade = np.asarray(COLOURS[colour], dtype=np.float32) * rng.uniform(0.8, 1.1) + rng.normal(0, 8, 3)
        tex = _texture(texture, w, h, rng)
        patch = img[y0 : y0 + h, x0 : x0 + w]
        patch[m] = np.clip(shade[None, :] * tex[m][:, None] + rng.normal(0, 5, (int(m.sum()), 3)), 0, 255)
        boxes.append(box)
    return np.clip(img, 0, 255).astype(np.uint8), np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def _split_layout(
    instance_classes: np.ndarray, n_images: int, max_per_image: int, rng: np.random.Generator
) -> list[list[int]]:
    """Distribute a shuffled multiset of class labels over ``n_images`` images (each >= 1 object)."""
    labels = instance_classes.copy()
    rng.shuffle(labels)
    n = len(labels)
    if n < n_images:
        raise ValueError(f"{n} instances cannot fill {n_images} images")
    if n > n_images * max_per_image:
        raise ValueError(f"{n} instances exceed {n_images} images x {max_per_image} objects")
    per = np.ones(n_images, dtype=np.int64)
    extra = n - n_images
    while extra > 0:  # random fill respecting the per-image cap
        free = np.flatnonzero(per < max_per_image)
        pick = rng.choice(free, size=min(extra, len(free)), replace=False)
        per[pick] += 1
        extra -= len(pick)
    out, i = [], 0
    for p in per:
        out.append([int(v) for v in labels[i : i + p]])
        i += p
    return out


def generate(cfg: SyntheticConfig) -> dict:
    """Generate both splits in memory.

    Returns ``{"train": (layouts, images, boxes), "val": ..., "counts": train instance counts}``
    where ``images`` is a uint8 array (N, S, S, 3), ``layouts`` the per-image class lists and
    ``boxes`` the per-image xyxy arrays.
    """
    rng = np.random.default_rng(cfg.seed)
    C = cfg.num_classes
    counts = tail_counts(C, cfg.tail, cfg.max_instances, cfg.min_instances)
    # which class gets which count is a seeded permutation, so no attribute is always frequent
    perm = np.random.default_rng(12345).permutation(C)
    train_counts = np.empty(C, dtype=np.int64)
    train_counts[perm] = counts
    train_labels = np.repeat(np.arange(C), train_counts)
    n_val_inst = int(round(cfg.val_images * cfg.val_objects_per_image))
    val_labels = np.concatenate([np.arange(C)] * (n_val_inst // C + 1))[:n_val_inst]
    out = {"counts": train_counts}
    for split, labels, n_img in (("train", train_labels, cfg.train_images), ("val", val_labels, cfg.val_images)):
        layouts = _split_layout(labels, n_img, cfg.max_objects_per_image, rng)
        images = np.empty((n_img, cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
        boxes = []
        for i, cls in progress.progress(
            enumerate(layouts), total=n_img, description=f"generating synthetic-lt {split} images"
        ):
            images[i], b = render_image(cls, cfg, rng)
            boxes.append(b)
        out[split] = (layouts, images, boxes)
    return out


def to_lvis_json(layouts, boxes, cfg: SyntheticConfig, split: str, train_counts=None, train_image_counts=None) -> dict:
    """LVIS/COCO-format ground truth for one split.

    Categories carry ``frequency`` (from the *training* image counts, LVIS rule), and this
    split's ``image_count``/``instance_count``. Annotation is exhaustive, so each image's
    ``neg_category_ids`` are all classes absent from it.
    """

    C = cfg.num_classes
    S = cfg.image_size
    images, anns = [], []
    inst = np.zeros(C, dtype=np.int64)
    imgc = np.zeros(C, dtype=np.int64)
    ann_id = 1
    for i, (cls, b) in enumerate(zip(layouts, boxes)):
        image_id = i + 1
        present = sorted(set(cls))
        images.append(
            {
                "id": image_id,
                "file_name": f"{split}_{image_id:06d}.png",
                "width": S,
                "height": S,
                "neg_category_ids": [k + 1 for k in range(C) if k not in present],
                "not_exhaustive_category_ids": [],
            }
        )
        for k in present:
            imgc[k] += 1
        for k, bb in zip(cls, b):
            x1, y1, x2, y2 = (float(v) for v in bb)
            anns.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": int(k) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            inst[k] += 1
            ann_id += 1
    freq_source = imgc if train_image_counts is None else np.asarray(train_image_counts)
    cats = _categories(C, lvis_frequency(freq_source), imgc, inst)
    return {
        "info": {"description": f"synthetic-lt {split} split", "config": asdict(cfg)},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": cats,
    }


def _categories(C: int, freq: np.ndarray, imgc: np.ndarray, inst: np.ndarray) -> list[dict]:
    """The LVIS-style categories: name, synset, a definition from the class's look, frequency and this split's
    image and instance counts."""
    names = class_names()
    cats = []
    for k in range(C):
        shape, colour, texture = class_attributes(k)
        cats.append(
            {
                "id": k + 1,
                "name": names[k],
                "synonyms": [names[k]],
                "synset": f"{names[k]}.n.01",
                "def": f"a {colour} {texture} {shape}",
                "supercategory": shape,
                "frequency": str(freq[k]),
                "image_count": int(imgc[k]),
                "instance_count": int(inst[k]),
            }
        )
    return cats


def write_synthetic_lt(out_dir, cfg: SyntheticConfig | None = None) -> dict:
    """Generate ``synthetic-lt`` into ``out_dir`` (``train.json``, ``val.json``, ``images/``).

    Idempotent: if ``out_dir/config.json`` already records the same config (and generator
    version), nothing is regenerated. Returns ``{"train": path, "val": path, "images": dir}``.
    """
    from PIL import Image

    cfg = cfg or SyntheticConfig()
    out = Path(out_dir)
    paths = {"train": out / "train.json", "val": out / "val.json", "images": out / "images"}
    stamp = out / "config.json"
    if stamp.exists() and paths["train"].exists() and paths["val"].exists():
        try:  # (the bounded reader: a FIFO or a huge stamp is not a finished build)
            if read_json(stamp, "run-record", type=dict) == {**asdict(cfg), "generator_version": GENERATOR_VERSION}:
                return paths
        except (InputError, OSError, ValueError):
            pass
    data = generate(cfg)
    paths["images"].mkdir(parents=True, exist_ok=True)
    train_layouts, _, train_boxes = data["train"]
    train_json = to_lvis_json(train_layouts, train_boxes, cfg, "train")
    train_imgc = [c["image_count"] for c in train_json["categories"]]
    for split in ("train", "val"):
        layouts, images, boxes = data[split]
        gt = train_json if split == "train" else to_lvis_json(layouts, boxes, cfg, split, train_image_counts=train_imgc)
        for rec, arr in progress.progress(
            zip(gt["images"], images), total=len(images), description=f"writing synthetic-lt {split} images"
        ):
            with atomic_path(paths["images"] / rec["file_name"]) as tmp:
                Image.fromarray(arr).save(tmp, format="PNG")
        write_json(paths[split], gt)
    write_json(stamp, {**asdict(cfg), "generator_version": GENERATOR_VERSION})
    return paths
