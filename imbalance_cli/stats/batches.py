"""Batch-level foreground-foreground imbalance (Oksuz et al., Imbalance Problems in Object Detection, TPAMI
2021, §4.2.2, §4.4.3, Fig. 6).

A dataset's class distribution need not be a batch's: with small batches an over-represented class
can be absent from a batch and a rare one can dominate it. This module draws the batches a training
run would see and measures them.

Samplers (all seeded with ``numpy.random.default_rng(seed)``; the stream of every epoch is
concatenated and cut into batches of ``batch_size``; the last batch may be partial and is kept, as PyTorch's
``DataLoader(drop_last=False)`` default does, unless ``drop_last`` (the report says which, and how many samples
were dropped or how large the last batch is):

* ``uniform``: each epoch is a random permutation of the images;
* ``repeat-factor``: LVIS / detectron2 repeat-factor sampling; image ``i`` has factor
  ``r_i = max over its classes of max(1, sqrt(t / f(c)))`` and appears ``floor(r_i) + Bernoulli(r_i -
  floor(r_i))`` times per epoch (stochastic rounding drawn afresh each epoch), then the epoch is shuffled;
* ``class-aware``: each sample picks a class uniformly among the classes with at least one image,
  then an image containing it uniformly (Shen et al. 2016, class-aware sampling); an epoch has as
  many samples as the dataset has images.

Statistics (valid, non-crowd boxes):

* class coverage: distinct classes per batch (and as a fraction of the used classes);
* group absence: share of batches without any instance of each LVIS frequency group (the file's
  own ``frequency`` when every category has one, as LVIS val files carry the train frequencies;
  otherwise from this dataset's image counts) and of each BAGS group (instance counts, Li et al.,
  BAGS, CVPR 2020, Eq. 3);
* divergence: total-variation distance ``1/2 sum_c |p_b(c) - q(c)|`` between each batch's class
  instance distribution ``p_b`` and the dataset's ``q``: mean, 95th percentile, max (batches
  without boxes are counted apart); and the TV between all sampled instances and ``q``;
* with anchors: foreground share per batch = positive anchors / all anchors of the batch's images.

Rendering and writing: :mod:`imbalance_cli.report.batches`.
"""

from __future__ import annotations

import numpy as np

from imbalance_cli.data.arrays import unique_ints
from imbalance_cli.errors import InputError
from imbalance_cli.stats.anchors import label_anchors
from imbalance_cli.stats.classes import bags_groups, class_counts, lvis_frequency, lvis_frequency_scope
from imbalance_cli.stats.groups import image_repeat_factors, repeat_factors

SCHEMA = "imbalance.batches/1"
SAMPLERS = ("uniform", "repeat-factor", "class-aware")


def _summary(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    if len(x) == 0:
        return {"mean": None, "min": None, "p5": None, "median": None, "p95": None, "max": None}
    return {
        "mean": float(x.mean()),
        "min": float(x.min()),
        "p5": float(np.percentile(x, 5)),
        "median": float(np.median(x)),
        "p95": float(np.percentile(x, 95)),
        "max": float(x.max()),
    }


def class_image_index(dataset, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the images holding each class: ``(offsets (K+1,), images)``; each image once per class."""
    K = dataset.num_categories
    pairs = unique_ints(
        dataset.box_category[valid].astype(np.int64) * dataset.num_images + dataset.box_image[valid],
        bound=K * dataset.num_images,
    )
    cls, img = pairs // max(dataset.num_images, 1), pairs % max(dataset.num_images, 1)
    offsets = np.zeros(K + 1, dtype=np.int64)
    np.cumsum(np.bincount(cls, minlength=K), out=offsets[1:])
    return offsets, img


def epoch_order(
    sampler: str,
    rng: np.random.Generator,
    num_images: int,
    image_factors: np.ndarray | None = None,
    class_index: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Image indices of one epoch under ``sampler`` (see module docstring)."""
    if sampler == "uniform":
        return rng.permutation(num_images)
    if sampler == "repeat-factor":
        r = np.asarray(image_factors, dtype=np.float64)
        base = np.floor(r)
        reps = (base + (rng.random(len(r)) < (r - base))).astype(np.int64)
        return rng.permutation(np.repeat(np.arange(len(r)), reps))
    if sampler == "class-aware":
        offsets, images = class_index
        sizes = np.diff(offsets)
        present = np.flatnonzero(sizes > 0)
        if len(present) == 0:
            raise InputError("class-aware sampling needs at least one class with a valid box")
        cls = present[rng.integers(0, len(present), size=num_images)]
        pick = offsets[cls] + np.floor(rng.random(num_images) * sizes[cls]).astype(np.int64)
        return images[pick]
    raise InputError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")


def anchor_counts(
    dataset, anchors: str, matcher: str | None = None, pos_iou: float | None = None, neg_iou: float | None = None
) -> dict:
    """Per-image anchor labels counted with the anchor engine (the labelling ``imbalance stats`` reports).

    One :func:`imbalance_cli.stats.anchors.label_anchors` pass (the engine ``imbalance stats`` uses:
    culled on a CPU, dense on CUDA) over the valid boxes. ``matcher`` defaults to the preset's own
    semantics (``ssd`` for SSD presets, else ``torchvision``). Returns numpy arrays per image
    ``anchors``, ``foreground``, ``ignored``, ``background`` (= anchors - foreground - ignored), the
    totals ``foreground_total``/``background_total``, positives per category row ``per_class_positive``,
    ``boxes_without_positive`` (valid boxes no anchor is assigned to, low-quality matches counted) and
    ``boxes_below_positive_iou`` (valid boxes with no positive at IoU >= the positive threshold; None for
    assigners without a fixed threshold) out of ``boxes`` (:mod:`imbalance_cli.vocabulary`), with their
    dataset box rows in ``box_without_positive`` / ``box_below_positive_iou``. A YOLOv5 preset (``yolov5`` or a
    ``kind = "yolov5"`` TOML) is counted by YOLOv5's own assignment
    (:func:`imbalance_cli.stats.yolov5.yolov5_anchor_counts`).
    """
    from imbalance_cli.anchors.kinds import resolve

    yolo_preset = resolve(anchors)
    if yolo_preset is not None:  # YOLOv5's build_targets (stats/yolov5.py), not an IoU matcher
        from imbalance_cli.stats.yolov5 import yolov5_anchor_counts

        return yolov5_anchor_counts(dataset, yolo_preset, matcher=matcher, pos_iou=pos_iou, neg_iou=neg_iou)
    lp = label_anchors(dataset, anchors, matcher=matcher or "auto", pos_iou=pos_iou, neg_iou=neg_iou)
    per_image = lp.per_image(dataset.num_images)
    res = lp.result
    has_pos = np.zeros(len(lp.order), dtype=bool)
    has_pos[res.pos_box] = True
    strong = None
    if getattr(lp.preset, "assigner", "max_iou") == "max_iou":
        strong = np.zeros(len(lp.order), dtype=bool)
        strong[np.asarray(res.pos_box)[np.asarray(res.pos_iou) >= np.float32(lp.preset.pos_iou)]] = True
    return {
        "preset": anchors,
        **per_image,
        "foreground_total": int(per_image["foreground"].sum()),
        "background_total": int(per_image["background"].sum()),
        "per_class_positive": np.bincount(
            dataset.box_category[lp.order][res.pos_box], minlength=dataset.num_categories
        ).astype(np.int64),
        "boxes": int(len(lp.order)),
        "boxes_without_positive": int((~has_pos).sum()),
        "box_without_positive": lp.order[~has_pos],
        "boxes_below_positive_iou": None if strong is None else int((~strong).sum()),
        "box_below_positive_iou": None if strong is None else lp.order[~strong],
        "pos_iou": float(lp.preset.pos_iou),
    }


# long: half of it is the imbalance.batches/1 report, one key a line in the schema's order
def batch_statistics(
    dataset,
    *,
    batch_size: int = 16,
    sampler: str = "uniform",
    epochs: int = 1,
    seed: int = 0,
    repeat_threshold: float = 0.001,
    anchors: str | None = None,
    keep_per_batch: bool = False,
    anchor_options: dict | None = None,
    drop_last: bool = False,
) -> dict:
    """The ``imbalance.batches/1`` report for one sampler (see module docstring)."""
    _check_options(batch_size, epochs, sampler)
    n_img, K = dataset.num_images, dataset.num_categories
    valid, inst, imgs = _class_distribution(dataset)
    q = inst / inst.sum()
    used = inst > 0

    stream, drawn, rest = _draw(
        dataset,
        valid,
        imgs,
        sampler=sampler,
        seed=seed,
        epochs=epochs,
        repeat_threshold=repeat_threshold,
        batch_size=batch_size,
        drop_last=drop_last,
    )
    n_batches = len(stream) // batch_size + (1 if rest and not drop_last else 0)
    batch_of_sample = np.arange(len(stream)) // batch_size
    b_of, c_of, bc_count = _batch_class_counts(dataset, valid, stream, batch_of_sample)
    per_batch_total, coverage, nonempty, tv = _per_batch_tv(b_of, c_of, bc_count, q, n_batches)

    sampled = np.bincount(c_of, weights=bc_count, minlength=K)

    group_absence = _group_absence(dataset, inst, imgs, b_of, c_of, n_batches)
    fg_share = per_batch_fg = None
    if anchors is not None:
        per_batch_fg = _foreground_share(dataset, anchors, anchor_options, stream, batch_of_sample, n_batches)
        fg_share = {"preset": anchors, "unit": "share (0-1); shown as %", **_summary(per_batch_fg)}

    report = {
        "schema": SCHEMA,
        "path": dataset.path,
        "sampler": sampler,
        "batch_size": int(batch_size),
        "epochs": int(epochs),
        "seed": int(seed),
        "repeat_threshold": float(repeat_threshold) if sampler == "repeat-factor" else None,
        "images": int(n_img),
        "samples": int(len(stream)),
        "samples_per_epoch": float(drawn / epochs),
        "batches": int(n_batches),
        "drop_last": bool(drop_last),
        "last_batch_size": int(rest if rest and not drop_last else batch_size),
        "dropped_samples": int(rest if drop_last else 0),
        "empty_batches": int((~nonempty).sum()),
        "classes_used": int(used.sum()),
        "instances_per_batch": _summary(per_batch_total),
        "coverage": {
            **_summary(coverage),
            "mean_fraction_of_used": float(coverage.mean() / max(used.sum(), 1)),
            "classes_never_sampled": int((used & (sampled == 0)).sum()),
        },
        "group_absence": group_absence,
        "divergence": _divergence(tv[nonempty], sampled, q),
        "foreground_share": fg_share,
    }
    if keep_per_batch:
        report["per_batch"] = {
            "instances": per_batch_total,
            "classes": coverage,
            "tv": np.where(nonempty, tv, np.nan),
            "foreground_share": per_batch_fg,
        }
    return report


def _class_distribution(dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(valid mask, instances per class, images per class)``; :class:`InputError` without images or valid boxes."""
    if dataset.num_images == 0:
        raise InputError("the dataset has no images", path=dataset.path)
    valid = dataset.valid_mask()
    inst, imgs = class_counts(dataset, valid)
    if inst.sum() == 0:
        raise InputError(
            "the dataset has no valid boxes: no class distribution to compare batches with", path=dataset.path
        )
    return valid, inst, imgs


def _group_absence(dataset, inst: np.ndarray, imgs: np.ndarray, b_of, c_of, n_batches: int) -> dict:
    """The report's ``group_absence``: batches without any class of each LVIS frequency group and BAGS group."""
    used = inst > 0
    freq, freq_source = _frequency_groups(dataset, imgs)
    return {
        "frequency": _absence(freq, ("r", "c", "f"), used, b_of, c_of, n_batches),
        "frequency_source": freq_source,
        "frequency_scope": None if freq_source == "file" else lvis_frequency_scope(dataset.num_images),
        "bags": _absence(bags_groups(inst), range(1, 5), used, b_of, c_of, n_batches),
    }


def _check_options(batch_size: int, epochs: int, sampler: str) -> None:
    """Reject a batch size or epoch count below 1 and an unknown sampler (before anything is drawn)."""
    if batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {batch_size}")
    if epochs < 1:
        raise InputError(f"--epochs must be >= 1, got {epochs}")
    if sampler not in SAMPLERS:
        raise InputError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")


def _per_batch_tv(b_of, c_of, bc_count, q, n_batches):
    """Per batch: instances, classes present, non-empty mask and total variation to the dataset's distribution ``q``.

    ``(b_of, c_of, bc_count)`` lists each (batch, class) pair present with its count; the classes absent from a batch
    add ``q`` to the TV sum, hence ``1 - sum(q over present classes)``."""
    per_batch_total = np.bincount(b_of, weights=bc_count, minlength=n_batches)
    coverage = np.bincount(b_of, minlength=n_batches)
    nonempty = per_batch_total > 0
    p = bc_count / per_batch_total[b_of]
    in_batch_abs = np.bincount(b_of, weights=np.abs(p - q[c_of]), minlength=n_batches)
    in_batch_q = np.bincount(b_of, weights=q[c_of], minlength=n_batches)
    tv = 0.5 * (in_batch_abs + 1.0 - in_batch_q)
    return per_batch_total, coverage, nonempty, tv


def _frequency_groups(dataset, imgs):
    """LVIS frequency groups: the file's own ``r``/``c``/``f`` when every class has one, else from image counts."""
    file_freq = dataset.frequency
    if file_freq is not None and all(f in ("r", "c", "f") for f in file_freq):
        return np.asarray(file_freq, dtype=object), "file"
    return lvis_frequency(imgs), "image_counts"


def _divergence(tv_ne, sampled, q) -> dict:
    """The report's ``divergence`` block: TV over non-empty batches, and of all sampled instances to the dataset."""
    return {
        "measure": "tv",
        "mean": float(tv_ne.mean()) if len(tv_ne) else None,
        "p95": float(np.percentile(tv_ne, 95)) if len(tv_ne) else None,
        "max": float(tv_ne.max()) if len(tv_ne) else None,
        "sampled_vs_dataset_tv": float(0.5 * np.abs(sampled / max(sampled.sum(), 1) - q).sum()),
    }


def _draw(dataset, valid, imgs, *, sampler, seed, epochs, repeat_threshold, batch_size, drop_last):
    """The sampler's image stream over all epochs (cut to whole batches with ``drop_last``), the samples drawn,
    and the size of the last partial batch (0 when none)."""
    n_img = dataset.num_images
    rng = np.random.default_rng(seed)
    image_factors = class_index = None
    if sampler == "repeat-factor":
        image_factors = image_repeat_factors(dataset, repeat_factors(imgs, n_img, repeat_threshold))
    elif sampler == "class-aware":
        class_index = class_image_index(dataset, valid)
    stream = np.concatenate([epoch_order(sampler, rng, n_img, image_factors, class_index) for _ in range(epochs)])
    drawn = len(stream)
    full, rest = divmod(len(stream), batch_size)
    if drop_last:
        if full == 0:
            raise InputError(
                f"--batch-size {batch_size} is larger than the {len(stream)} samples drawn "
                "(--drop-last leaves no batch)"
            )
        stream = stream[: full * batch_size]
    return stream, drawn, rest


def _batch_class_counts(dataset, valid, stream, batch_of_sample):
    """Instances per (batch, class) pair present: ``(batch, class, count)`` arrays, sorted by batch then class."""
    n_img, K = dataset.num_images, dataset.num_categories
    # per-image class counts as CSR over (image, class) pairs
    pair_keys, pair_counts = np.unique(
        dataset.box_image[valid].astype(np.int64) * K + dataset.box_category[valid], return_counts=True
    )
    pair_img, pair_cls = pair_keys // K, pair_keys % K
    img_off = np.zeros(n_img + 1, dtype=np.int64)
    np.cumsum(np.bincount(pair_img, minlength=n_img), out=img_off[1:])
    # expand samples to (batch, class, count) entries
    lens = img_off[stream + 1] - img_off[stream]
    starts = np.repeat(img_off[stream], lens)
    within = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    entry = starts + within
    e_batch = np.repeat(batch_of_sample, lens)
    e_cls = pair_cls[entry]
    e_cnt = pair_counts[entry]
    bk, inv = np.unique(e_batch * K + e_cls, return_inverse=True)
    bc_count = np.bincount(inv, weights=e_cnt)
    return bk // K, bk % K, bc_count


def _absence(groups: np.ndarray, labels, used, b_of, c_of, n_batches: int) -> dict:
    """Per group label: the share of batches holding no instance of the group's used classes (None: no class)."""
    out = {}
    for g in labels:
        members = (groups == g) & used
        if not members.any():
            out[str(g)] = None
            continue
        hit = np.zeros(n_batches, dtype=bool)
        hit[b_of[members[c_of]]] = True
        out[str(g)] = float(1.0 - hit.mean())
    return out


def _foreground_share(dataset, anchors, anchor_options, stream, batch_of_sample, n_batches: int) -> np.ndarray:
    """Per batch: foreground anchors over all anchors of its images (0 for a batch without anchors)."""
    ac = anchor_counts(dataset, anchors, **(anchor_options or {}))
    fg, na = ac["foreground"].astype(np.float64), ac["anchors"].astype(np.float64)
    bf = np.bincount(batch_of_sample, weights=fg[stream], minlength=n_batches)
    ba = np.bincount(batch_of_sample, weights=na[stream], minlength=n_batches)
    return np.divide(bf, ba, out=np.zeros_like(bf), where=ba > 0)
