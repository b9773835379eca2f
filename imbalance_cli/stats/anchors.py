"""Anchor statistics of a dataset as a detector sees it (survey seed 000, §4.1, Figs. 4, 12a, 14).

:func:`anchor_statistics` lays a preset's anchors (default: torchvision ``retinanet_resnet50_fpn``)
on every image, labels them with a detector's matcher and reports:

* anchors per image; foreground / background / ignored totals and per-image means (Fig. 4a);
* positives per class, total and per image (Fig. 4b), and positives per instance by class;
* the pos:neg ratio of anchors and the *task* ratio for C sigmoid classifiers: each positive
  gives 1 positive and C - 1 negative tasks, each negative C negative tasks (seed 001, RS-loss
  supplementary §S3.5, Table S7). Ratios are stored as positives / negatives (1 : 1/r);
* per pyramid level: anchors, positives, boxes whose best anchor lies on the level (§5.4.1);
* IoU histogram of positives with their matched box (Fig. 12a, 0.05 bins over [0, 1]; low-quality
  positives below ``pos_iou`` visible) and of negatives' best IoU over [0, neg_iou) with exact
  zeros counted apart (computed on a random sample of images on a CPU, stated in the report);
* coverage: boxes with no anchor at or above ``pos_iou`` and boxes whose best IoU is below
  ``neg_iou``, by class and COCO size group (area < 32², < 96², else; the file's ``area`` where
  given, else the box's w·h in original pixels);
* relative spatial distribution of positives (Fig. 14): ``((x1a - x1g) / wg, (y1a - y1g) / hg)``
  of each positive anchor in its matched box's frame, a 2-D histogram.

Only valid boxes take part (``Dataset.valid_mask``); an image without valid boxes has all its
anchors background. On a CPU the culled engine runs over the whole dataset at once; on CUDA the
dense engine runs batched by padded size. Both give identical labels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError

#: Default number of images sampled for the negative-anchor IoU histogram on a CPU.
DEFAULT_NEGATIVE_IOU_SAMPLE = 100
IOU_BIN = 0.05
SPATIAL_BINS = 40
SPATIAL_RANGE = (-1.0, 1.0)
SIZE_GROUPS = ("small", "medium", "large")


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; ``cuda`` without a GPU -> InputError."""
    d = str(device).lower()
    if d not in ("auto", "cpu", "cuda") and not d.startswith("cuda:"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    import torch

    if d == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but no CUDA device is available (use --device cpu or auto)")
    return d


def resolve_semantics(matcher: str | None, preset) -> str:
    """Matcher semantics for a preset.

    ``None``/``"auto"`` -> the preset's own; ``"torchvision"`` means torchvision's matcher *of that
    model* (``SSDMatcher`` for an ``ssd`` preset); ``"mmdet"`` MaxIoUAssigner; ``"ssd"`` SSDMatcher.
    """
    m = "auto" if matcher is None else str(matcher).lower()
    if m == "auto":
        return preset.matcher
    if m == "torchvision":
        return "ssd" if preset.kind == "ssd" else "torchvision"
    if m in ("mmdet", "ssd"):
        return m
    raise InputError(f"--matcher must be torchvision, mmdet, ssd or auto, got {matcher!r}")


def _edges(hi: float, step: float = IOU_BIN) -> np.ndarray:
    n = int(np.ceil(hi / step - 1e-9))
    e = np.round(np.arange(n + 1) * step, 10)
    e[-1] = hi
    return e


def _hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts over half-open bins [e_i, e_{i+1}); the last bin also takes values equal to its right edge."""
    b = np.searchsorted(edges, values, side="right") - 1
    b = np.where(values == edges[-1], len(edges) - 2, b)
    b = b[(b >= 0) & (b < len(edges) - 1)]
    return np.bincount(b, minlength=len(edges) - 1).astype(np.int64)


def _size_group(dataset: Dataset, order: np.ndarray) -> np.ndarray:
    b = dataset.boxes[order]
    area = dataset.area[order]
    wh = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    a = np.where(np.isfinite(area) & (area > 0), area, wh)
    return np.where(a < 32 ** 2, 0, np.where(a < 96 ** 2, 1, 2))


@dataclass
class AnchorLabels:
    """One labelling pass of a preset's anchors over a dataset's valid boxes (see :func:`label_anchors`).

    ``order`` are the valid box indices grouped by image, ``box_image`` their image rows,
    ``scaled_boxes`` those boxes in the resized image, ``result`` the engine's per-positive arrays
    (``pos_image``, ``pos_box`` (index into ``order``), ``pos_iou``, ``pos_level``, ...) and
    ``ignored_per_image``; ``anchors_per_image`` is arithmetic from the padded sizes.
    """

    preset: Any
    semantics: str
    device: str
    engine: str
    order: np.ndarray
    box_image: np.ndarray
    padded_h: np.ndarray
    padded_w: np.ndarray
    anchors_per_image: np.ndarray
    scaled_boxes: np.ndarray
    result: Any

    def per_image(self, num_images: int) -> dict:
        """Per-image int64 arrays ``anchors``, ``foreground``, ``ignored``, ``background``."""
        total = np.asarray(self.anchors_per_image, dtype=np.int64)
        fg = np.bincount(self.result.pos_image, minlength=num_images).astype(np.int64)
        ign = np.asarray(self.result.ignored_per_image, dtype=np.int64)
        return {"anchors": total, "foreground": fg, "ignored": ign, "background": total - fg - ign}


def label_anchors(dataset: Dataset, anchors: Any = "retinanet", *, matcher: str | None = None,
                  device: str = "auto", pos_iou: float | None = None, neg_iou: float | None = None,
                  engine: str | None = None) -> AnchorLabels:
    """Label every anchor of every image with the preset's matcher (the pass all anchor statistics share).

    Boxes are the valid ones, resized like torchvision's ``GeneralizedRCNNTransform``; the culled
    engine runs on a CPU, the dense engine (batched by padded size) on CUDA; both give identical
    labels. Raises :class:`InputError` without image sizes or for bad options.
    """
    from imbalance_cli.anchors.generator import box_keep, num_anchors, padded_sizes, resize_errors, scale_boxes
    from imbalance_cli.anchors.matcher import culled_match_dataset, dense_match_dataset
    from imbalance_cli.anchors.presets import get_preset

    preset = get_preset(anchors, pos_iou=pos_iou, neg_iou=neg_iou)
    semantics = resolve_semantics(matcher, preset)
    dev = resolve_device(device)
    if engine is None:
        engine = "dense" if dev.startswith("cuda") else "culled"
    if engine not in ("dense", "culled"):
        raise InputError(f"engine must be dense or culled, got {engine!r}")
    if engine == "culled" and dev != "cpu":
        raise InputError("the culled engine runs on the CPU only (use --device cpu or the dense engine)")
    if not dataset.has_image_sizes:
        raise InputError("anchor statistics need image sizes (pass an image sizes file or --anchors none)",
                         path=dataset.path)
    H, W = dataset.heights, dataset.widths
    bad = np.flatnonzero(~(np.isfinite(H) & np.isfinite(W) & (H >= 1) & (W >= 1)))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"image {int(dataset.image_ids[i])} has no usable size ({W[i]} x {H[i]}); anchor "
                         "statistics need every image's width and height", path=dataset.path)
    bad = np.flatnonzero(resize_errors(H, W, preset))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"image {int(dataset.image_ids[i])} ({W[i]:g} x {H[i]:g}) would be resized to an empty side by "
                         f"preset {preset.name!r} ({bad.size} such image(s)); the framework refuses it", path=dataset.path)
    valid = dataset.valid_mask()
    v = np.flatnonzero(valid)
    bi = dataset.box_image[v]
    valid[v] = box_keep(preset, dataset.boxes[v], H[bi], W[bi], dataset.area[v])
    order, _ = dataset.image_offsets(valid)
    bimg = dataset.box_image[order]
    ph, pw = padded_sizes(H, W, preset)
    sb = scale_boxes(dataset.boxes[order], H[bimg], W[bimg], preset)
    if getattr(preset, "assigner", "max_iou") != "max_iou":
        from imbalance_cli.anchors.assigners import ASSIGNERS

        if matcher is not None and str(matcher).lower() != "auto":
            raise InputError(f"--matcher {matcher} does not apply to preset {preset.name!r}: it assigns with "
                             f"{preset.assigner}, not a max-IoU matcher (leave --matcher at auto)")

        res = ASSIGNERS[preset.assigner](preset, sb, bimg, ph, pw, semantics=semantics)
    elif engine == "culled":
        res = culled_match_dataset(preset, sb, bimg, ph, pw, semantics=semantics)
    else:
        res, _, _ = dense_match_dataset(preset, sb, bimg, ph, pw, semantics=semantics, device=dev)
    return AnchorLabels(preset, semantics, dev, engine, order, bimg, ph, pw, num_anchors(preset, ph, pw), sb, res)


def anchor_statistics(dataset: Dataset, anchors: Any = "retinanet", *, matcher: str | None = None,
                      device: str = "auto", pos_iou: float | None = None, neg_iou: float | None = None,
                      negative_iou_sample: int | str | None = None, seed: int = 0, engine: str | None = None,
                      spatial_bins: int = SPATIAL_BINS) -> dict:
    """Anchor statistics of ``dataset`` (see module docstring); returns the report's ``anchors`` dict.

    Parameters
    ----------
    anchors: preset name (``retinanet``, ``rpn``, ``ssd300``), TOML path, or ``AnchorPreset``.
    matcher: ``torchvision`` (default), ``mmdet``, ``ssd`` or ``auto``/None (the preset's own);
        with an ``ssd`` preset, ``torchvision`` means torchvision's ``SSDMatcher``.
    device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    pos_iou, neg_iou: override the preset's thresholds.
    negative_iou_sample: images sampled (seeded) for the negative IoU histogram; ``"all"`` for
        every image; default ``all`` on CUDA and :data:`DEFAULT_NEGATIVE_IOU_SAMPLE` on a CPU.
    engine: ``culled`` or ``dense``; default culled on a CPU and dense on CUDA.
    """
    from imbalance_cli.anchors.generator import level_layout
    from imbalance_cli.anchors.matcher import culled_negative_histogram, dense_match_dataset

    t0 = time.perf_counter()
    if negative_iou_sample is None:
        negative_iou_sample = "all" if resolve_device(device).startswith("cuda") else DEFAULT_NEGATIVE_IOU_SAMPLE
    if isinstance(negative_iou_sample, str):
        if negative_iou_sample.lower() != "all":
            try:
                negative_iou_sample = int(negative_iou_sample)
            except ValueError:
                raise InputError(f"--negative-iou-sample must be a positive integer or 'all', got {negative_iou_sample!r}") from None
    if not isinstance(negative_iou_sample, str) and int(negative_iou_sample) < 1:
        raise InputError(f"--negative-iou-sample must be a positive integer or 'all', got {negative_iou_sample!r}")

    lp = label_anchors(dataset, anchors, matcher=matcher, device=device, pos_iou=pos_iou, neg_iou=neg_iou, engine=engine)
    preset, semantics, dev, engine = lp.preset, lp.semantics, lp.device, lp.engine
    order, bimg, ph, pw, sb, res = lp.order, lp.box_image, lp.padded_h, lp.padded_w, lp.scaled_boxes, lp.result
    per_image_anchors = lp.anchors_per_image
    n_img = dataset.num_images
    pos_t, neg_t = np.float32(preset.pos_iou), np.float32(preset.neg_iou if semantics != "ssd" else preset.pos_iou)

    # negative IoU histogram (every anchor's best IoU: dense engine on a sample of images)
    neg_f = float(preset.neg_iou if semantics != "ssd" else preset.pos_iou)
    neg_edges = _edges(neg_f) if neg_f > 0 else np.array([0.0, 0.0])
    if isinstance(negative_iou_sample, str):
        sample = np.arange(n_img)
    else:
        k = min(int(negative_iou_sample), n_img)
        sample = np.sort(np.random.default_rng(seed).choice(n_img, size=k, replace=False)) if k < n_img else np.arange(n_img)
    if preset.assigner != "max_iou":  # ATSS / FCOS: negatives have no IoU band to histogram
        sample = np.arange(0)
    if neg_t > 0 and len(sample) and engine == "culled":
        neg_counts, neg_zero = culled_negative_histogram(preset, sb, bimg, ph, pw, sample, neg_edges, res)
    elif neg_t > 0 and len(sample):
        _, neg_counts, neg_zero = dense_match_dataset(preset, sb, bimg, ph, pw, semantics=semantics, device=dev,
                                                      images=sample, negative_edges=neg_edges,
                                                      progress_description="negative IoU sample")
    else:
        neg_counts, neg_zero = np.zeros(len(neg_edges) - 1, np.int64), 0

    # ---- totals
    C = dataset.num_categories
    total = int(per_image_anchors.sum())
    fg = int(len(res.pos_box))
    ign = int(res.ignored_per_image.sum())
    bg = total - fg - ign
    n = max(n_img, 1)
    cat_of_box = dataset.box_category[order]
    pos_cls = cat_of_box[res.pos_box]
    pos_per_class = np.bincount(pos_cls, minlength=C).astype(np.int64)
    inst = np.bincount(cat_of_box, minlength=C).astype(np.int64)
    cat_ids = [str(int(c)) for c in dataset.category_ids]
    per_class_positive = {cid: int(v) for cid, v in zip(cat_ids, pos_per_class)}
    pos_neg_ratio = fg / bg if bg > 0 else None
    neg_tasks = fg * (C - 1) + bg * C
    task_ratio = fg / neg_tasks if neg_tasks > 0 else None

    # ---- levels
    L = preset.num_levels
    lev_anchors = np.zeros(L, np.int64)
    sizes, inv = np.unique(np.stack([ph, pw], 1), axis=0, return_inverse=True) if n_img else (np.zeros((0, 2), np.int64), np.zeros(0, np.int64))
    size_count = np.bincount(inv.reshape(-1), minlength=len(sizes))
    for (h, w), cnt in zip(sizes, size_count):
        for lv, lay in enumerate(level_layout(preset, int(h), int(w))):
            lev_anchors[lv] += lay.count * int(cnt)
    lev_fg = np.bincount(res.pos_level, minlength=L)
    lev_best = np.bincount(res.box_best_level, minlength=L) if len(res.box_best_level) else np.zeros(L, np.int64)
    levels = [{"name": preset.level_names[lv], "stride": int(preset.strides[lv]), "anchors": int(lev_anchors[lv]),
               "foreground": int(lev_fg[lv]), "best_level_boxes": int(lev_best[lv])} for lv in range(L)]

    # ---- IoU histograms
    pos_edges = _edges(1.0)
    positive_iou = {"edges": pos_edges.tolist(), "counts": _hist(res.pos_iou.astype(np.float64), pos_edges).tolist(),
                    "low_quality": int((res.pos_iou < pos_t).sum())}
    negative_iou = {"edges": neg_edges.tolist(), "counts": [int(v) for v in neg_counts], "zero": int(neg_zero),
                    "sample_images": int(len(sample)), "exact": bool(len(sample) == n_img),
                    "seed": int(seed)}
    box_max = res.box_max_iou
    box_best_hist = {"edges": pos_edges.tolist(), "counts": _hist(box_max.astype(np.float64), pos_edges).tolist()}

    # ---- coverage
    no_pos = box_max < pos_t
    if preset.assigner != "max_iou":  # a box is covered when the assigner gave it a positive
        no_pos = np.bincount(res.pos_box, minlength=len(order)) == 0
    below = box_max < neg_t
    sg = _size_group(dataset, order)

    def by(mask_groups, labels):
        out = {}
        for key, m in zip(labels, mask_groups):
            out[key] = {"boxes": int(m.sum()), "without_positive": int((no_pos & m).sum()),
                        "below_negative": int((below & m).sum())}
        return out

    cov_class = {}
    wp = np.bincount(cat_of_box[no_pos], minlength=C)
    bn = np.bincount(cat_of_box[below], minlength=C)
    for ci, cid in enumerate(cat_ids):
        if inst[ci]:
            cov_class[cid] = {"boxes": int(inst[ci]), "without_positive": int(wp[ci]), "below_negative": int(bn[ci])}
    coverage = {"by_class": cov_class, "by_size": by([sg == i for i in range(3)], SIZE_GROUPS)}

    # ---- relative spatial distribution of positives (Fig. 14)
    spatial = _spatial(preset, res, sb, ph, pw, int(spatial_bins))

    per_image = {"anchors": total / n, "foreground": fg / n, "background": bg / n, "ignored": ign / n}
    out = {
        "preset": preset.name, "matcher": semantics, "device": dev, "engine": engine,
        "thresholds": {"pos_iou": float(preset.pos_iou), "neg_iou": neg_f,
                       "allow_low_quality": bool(preset.allow_low_quality)},
        "images": int(n_img), "boxes": int(len(order)),
        "anchors": total, "foreground": fg, "background": bg, "ignored": ign,
        "per_image": per_image,
        "per_class_positive": per_class_positive,
        "per_class_positive_per_image": {cid: int(v) / n for cid, v in zip(cat_ids, pos_per_class)},
        "positives_per_instance": {cid: int(p) / int(i) for cid, p, i in zip(cat_ids, pos_per_class, inst) if i},
        "instances_per_class": {cid: int(i) for cid, i in zip(cat_ids, inst)},
        "pos_neg_ratio": pos_neg_ratio,
        "task_pos_neg_ratio": task_ratio,
        "pos_neg_ratio_text": _ratio_text(pos_neg_ratio),
        "task_pos_neg_ratio_text": _ratio_text(task_ratio),
        "num_classes": int(C),
        "levels": levels,
        "positive_iou": positive_iou,
        "negative_iou": negative_iou,
        "box_max_iou": box_best_hist,
        "boxes_without_positive": int(no_pos.sum()),
        "boxes_below_negative": int(below.sum()),
        "coverage": coverage,
        "spatial": spatial,
        "images_without_boxes": int(np.sum(np.bincount(bimg, minlength=n_img) == 0)) if n_img else 0,
        "dense_fallback_images": int(res.fallback_images),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return out


def _ratio_text(r: float | None) -> str | None:
    if r is None:
        return None
    if r <= 0:
        return "0"
    return f"1:{1 / r:,.0f}" if 1 / r >= 10 else f"1:{1 / r:.2f}"


def _spatial(preset, res, sb: np.ndarray, ph: np.ndarray, pw: np.ndarray, bins: int) -> dict:
    """2-D histogram (rows = y) of positives' top-left corners in their box's normalised frame (Fig. 14).

    Bins are ``bins`` equal steps over :data:`SPATIAL_RANGE` per axis; corners outside are counted
    in ``outside``.
    """
    from imbalance_cli.anchors.generator import anchor_coords, base_anchors
    from imbalance_cli.anchors.matcher import _Layouts

    lo, hi = SPATIAL_RANGE
    edges = np.linspace(lo, hi, bins + 1)
    counts = np.zeros((bins, bins), np.int64)
    outside = 0
    P = len(res.pos_box)
    if P:
        lay = _Layouts(preset, ph, pw)
        img, lvl = res.pos_image, res.pos_level
        within = res.pos_anchor - lay.offset[img, lvl]
        K = lay.per_loc[lvl]
        cell, k = np.divmod(within, K)
        i, j = np.divmod(cell, lay.gw[img, lvl])
        if preset.kind == "grid" and preset.anchor_rule == "torchvision":
            # top-left corner only: j * stride + base x1 (exact integers)
            first = np.concatenate(([0], np.cumsum([len(preset.sizes[l]) * len(preset.aspect_ratios[l])
                                                    for l in range(preset.num_levels)])))
            base = np.concatenate([base_anchors(preset, l) for l in range(preset.num_levels)]).astype(np.float64)
            s_idx = first[lvl] + k
            ax1 = j * lay.sx[img, lvl] + base[s_idx, 0]
            ay1 = i * lay.sy[img, lvl] + base[s_idx, 1]
        else:
            a = np.empty((P, 4), np.float32)
            for lv in np.unique(lvl):
                m = lvl == lv
                a[m] = anchor_coords(preset, int(lv), k[m], i[m], j[m], ph[img[m]], pw[img[m]])
            ax1, ay1 = a[:, 0].astype(np.float64), a[:, 1].astype(np.float64)
        g = sb[res.pos_box].astype(np.float64)
        rx = (ax1 - g[:, 0]) / (g[:, 2] - g[:, 0])
        ry = (ay1 - g[:, 1]) / (g[:, 3] - g[:, 1])
        inside = (rx >= lo) & (rx <= hi) & (ry >= lo) & (ry <= hi)
        outside = int(P - inside.sum())
        scale = bins / (hi - lo)
        bx = np.minimum(((rx[inside] - lo) * scale).astype(np.int64), bins - 1)
        by = np.minimum(((ry[inside] - lo) * scale).astype(np.int64), bins - 1)
        counts = np.bincount(by * bins + bx, minlength=bins * bins).reshape(bins, bins).astype(np.int64)
    return {"bins": bins, "range": [lo, hi], "edges": edges.tolist(), "counts": counts.tolist(), "outside": outside}
