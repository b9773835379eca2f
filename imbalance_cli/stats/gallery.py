"""What the gallery of ``report.html`` shows, as plain data: which images, and every box and anchor on them.

:func:`gallery_plan` picks at most ``n`` images from the per-box table (:class:`~imbalance_cli.stats.boxes.BoxTable`)
and labels them again with the same preset and engine (labels are per image, so they are the anchor pass's):

* **worst images**: the images with the most boxes without a positive anchor (then the most boxes below the
  positive IoU, then the lowest best IoU), up to a third of ``n``;
* **one image per pyramid level view**: the image whose boxes have their best anchors on the most levels (then
  the most boxes); its positive anchors are kept per level;
* **class strips**: classes in order of instances, the tail first (at most :data:`MAX_CLASSES`), each with up to
  :data:`CROPS_PER_CLASS` boxes -- boxes without a positive first, then the lowest best IoU -- taken from images
  already chosen or, while fewer than ``n`` images are chosen, from a new one.

Everything is in the detector's input frame: the preset's resize (YOLOv5: the letterbox), the padding, the boxes
as the anchor pass scaled them, anchors as the preset lays them. Rendering (pixels, files, HTML) is
:mod:`imbalance_cli.report.gallery`'s.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from imbalance_cli.anchors.generator import padded_sizes, resized_sizes
from imbalance_cli.anchors.layouts import ImageLayouts
from imbalance_cli.anchors.yolov5 import YoloV5Preset, assign_yolov5, letterbox_boxes, letterbox_geometry, level_grids
from imbalance_cli.specs import AnchorSpec
from imbalance_cli.stats.anchors import label_anchors
from imbalance_cli.stats.boxes import STATUSES, BoxTable

#: Default ``--gallery``: images decoded (or drawn on a blank canvas) at most.
DEFAULT_IMAGES = 12
MAX_CLASSES = 30
CROPS_PER_CLASS = 6


def _per_image(table: BoxTable, n_img: int, pos_t: float | None):
    img = table.box_image
    uncovered = np.bincount(img, weights=table.status != 0, minlength=n_img)
    below = np.bincount(img, weights=table.max_iou < pos_t, minlength=n_img) if pos_t is not None else np.zeros(n_img)
    lowest = np.full(n_img, np.inf)
    np.minimum.at(lowest, img, table.max_iou.astype(np.float64))
    boxes = np.bincount(img, minlength=n_img)
    return uncovered, below, lowest, boxes


def _pick(table: BoxTable, n: int) -> tuple[list[int], int | None, list[dict]]:
    """``(worst image rows, the levels image row, class strips)``; at most ``n`` distinct images in all."""
    ds = table.dataset
    preset = table.preset
    pos_t = float(preset.pos_iou) if getattr(preset, "assigner", "max_iou") == "max_iou" else None
    uncovered, below, lowest, boxes = _per_image(table, ds.num_images, pos_t)
    cand = np.flatnonzero((uncovered > 0) | (below > 0))
    cand = cand[np.lexsort((cand, lowest[cand], -below[cand], -uncovered[cand]))]
    worst = [int(i) for i in cand[: max(1, n // 3)]] if n else []
    chosen: list[int] = list(worst)
    levels_img = None
    if n and len(table):
        img = table.box_image
        pairs = np.unique(img * 64 + table.best_level)
        n_levels = np.bincount(pairs // 64, minlength=ds.num_images)
        with_boxes = np.flatnonzero(boxes > 0)
        best = with_boxes[np.lexsort((with_boxes, -boxes[with_boxes], -n_levels[with_boxes]))]
        levels_img = int(best[0])
        if levels_img not in chosen and len(chosen) < n:
            chosen.append(levels_img)
        elif levels_img not in chosen:
            levels_img = None
    strips = []
    if n and len(table):
        cat = table.box_category
        inst = np.bincount(cat, minlength=ds.num_categories)
        classes = np.flatnonzero(inst > 0)
        classes = classes[np.lexsort((ds.category_ids[classes], inst[classes]))][:MAX_CLASSES]
        rows = np.arange(len(table))
        order = np.lexsort((rows, table.max_iou, table.status == 0, cat))  # per class: uncovered, lowest IoU first
        starts = np.searchsorted(cat[order], np.arange(ds.num_categories + 1))
        img = table.box_image
        for c in classes:
            crops = []
            for r in order[starts[c] : starts[c + 1]]:
                i = int(img[r])
                if i not in chosen:
                    if len(chosen) >= n:
                        continue
                    chosen.append(i)
                crops.append(int(r))
                if len(crops) == CROPS_PER_CLASS:
                    break
            strips.append(
                {
                    "category": str(ds.category_names[c]),
                    "category_id": int(ds.category_ids[c]),
                    "instances": int(inst[c]),
                    "without_positive": int(((cat == c) & (table.status != 0)).sum()),
                    "rows": crops,
                }
            )
    return worst, levels_img, strips


def _geometry(preset, H: np.ndarray, W: np.ndarray) -> dict:
    """Per image: resized (h, w), padded (h, w) and the image's offset in the padded input (x, y)."""
    if isinstance(preset, YoloV5Preset):
        r, ph, pw, px, py = letterbox_geometry(H, W, preset)
        rh, rw = np.round(H * r).astype(np.int64), np.round(W * r).astype(np.int64)
        # YOLOv5's letterbox: top, left = round(dh - 0.1), round(dw - 0.1) of the half paddings
        ox, oy = np.round(px - 0.1).astype(np.int64), np.round(py - 0.1).astype(np.int64)
        return {
            "rh": rh,
            "rw": rw,
            "ph": ph,
            "pw": pw,
            "ox": ox,
            "oy": oy,
            "fill": (114, 114, 114),
            "fill_meaning": "YOLOv5's letterbox grey (114)",
        }
    rh, rw = resized_sizes(H, W, preset)
    ph, pw = padded_sizes(H, W, preset)
    zero = np.zeros(len(H), np.int64)
    return {
        "rh": rh,
        "rw": rw,
        "ph": ph,
        "pw": pw,
        "ox": zero,
        "oy": zero,
        "fill": (124, 116, 104),
        "fill_meaning": "zero after normalisation (the ImageNet mean colour)",
    }


def _relabel(table: BoxTable, rows: np.ndarray):
    """The chosen images labelled again: ``(sub-dataset, result, anchor corners function)``."""
    ds = table.dataset.subset_images(rows)
    preset = table.preset
    if isinstance(preset, YoloV5Preset):
        order, _ = ds.image_offsets(ds.valid_mask())
        bimg = ds.box_image[order]
        _r, ph, pw, _px, _py = letterbox_geometry(ds.heights, ds.widths, preset)
        lb = letterbox_boxes(ds.boxes[order], ds.heights[bimg], ds.widths[bimg], preset)
        res = assign_yolov5(preset, lb, bimg, ph, pw)

        def corners(img, anchor, level):
            return _yolo_corners(preset, img, anchor, level, ph, pw)

        return ds, res, corners
    anchors = table.anchors
    spec = replace(anchors, workers=1) if isinstance(anchors, AnchorSpec) else AnchorSpec.build(preset, workers=1)
    lab = label_anchors(ds, spec=spec)
    lay = ImageLayouts(preset, lab.padded_h, lab.padded_w)

    def corners(img, anchor, level):
        return lay.coords(preset, np.asarray(img, np.int64), np.asarray(anchor, np.int64), np.asarray(level, np.int64))

    return ds, lab.result, corners


def _yolo_corners(preset: YoloV5Preset, img, anchor, level, ph, pw) -> np.ndarray:
    """Corners of YOLOv5 anchors (the Detect head's order: level, row, column, anchor), each centred on its cell."""
    img, anchor, lvl = (np.asarray(v, np.int64) for v in (img, anchor, level))
    _gh, gw, off = level_grids(preset, ph, pw)
    per = np.array([preset.anchors_per_location(lv) for lv in range(preset.num_levels)], np.int64)[lvl]
    cell, k = np.divmod(anchor - off[lvl, img], per)
    i, j = np.divmod(cell, gw[lvl, img])
    stride = np.asarray(preset.strides, np.float64)[lvl]
    first = np.concatenate([[0], np.cumsum([len(a) for a in preset.anchors])])[lvl]
    wh = preset.anchor_array()[first + k]
    cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
    return np.stack([cx - wh[:, 0] / 2, cy - wh[:, 1] / 2, cx + wh[:, 0] / 2, cy + wh[:, 1] / 2], 1)


def gallery_plan(table: BoxTable, n: int) -> dict:
    """The gallery of at most ``n`` images (see the module docstring), as plain data for the renderer.

    ``images``: one entry per chosen image (dataset row, id, file name, original and resized and padded sizes,
    the image's offset in the padded input, its boxes with status, class, best IoU, best level and -- when not
    covered at the positive threshold -- its best anchor; the levels image also its positive anchors per level);
    ``worst`` / ``levels`` index ``images``; ``classes``: the strips, each crop ``(image index, box index)``.
    """
    worst, levels_img, strips = _pick(table, int(n))
    rows = sorted(
        set(worst)
        | ({levels_img} if levels_img is not None else set())
        | {int(table.box_image[r]) for s in strips for r in s["rows"]}
    )
    preset = table.preset
    names = [str(x) for x in getattr(preset, "level_names", ())]
    out = _empty_plan(preset, names)
    if not rows:
        return out
    ds = table.dataset
    rows_a = np.asarray(rows, np.int64)
    geo = _geometry(preset, ds.heights[rows_a], ds.widths[rows_a])
    out["fill"], out["fill_meaning"] = list(geo["fill"]), geo["fill_meaning"]
    _sub, res, corners = _relabel(table, rows_a)
    start = np.searchsorted(table.box_image, np.arange(ds.num_images + 1))
    local = np.concatenate([np.arange(start[r], start[r + 1]) for r in rows])  # table rows of the chosen images
    if len(res.box_max_iou) != len(local):
        raise AssertionError("the gallery's images relabelled to a different number of boxes")
    scaled = _scaled_boxes(table, start, rows) if len(local) else np.zeros((0, 4), np.float32)
    status, iou, level = table.status[local], table.max_iou[local], table.best_level[local]
    sub_img = np.repeat(np.arange(len(rows)), [int(start[r + 1] - start[r]) for r in rows])
    best = (
        corners(sub_img, res.box_best_anchor, np.asarray(res.box_best_level, np.int64))
        if len(local)
        else np.zeros((0, 4))
    )
    pos_t = out["pos_iou"]
    draw_best = (status != 0) | ((iou < pos_t) if pos_t is not None else np.zeros(len(local), bool))
    if getattr(preset, "kind", "grid") == "point":  # FCOS points have no box to draw
        draw_best[:] = False
    index_of = {r: k for k, r in enumerate(rows)}
    box_pos = {}  # table row -> (image index, box index)
    cats = ds.category_names[ds.box_category[table.order[local]]]
    for k, r in enumerate(rows):
        sel = np.flatnonzero(sub_img == k)
        entry = _image_entry(ds, geo, int(r), k)
        for b, s in enumerate(sel):
            box_pos[int(local[s])] = (k, b)
            entry["boxes"].append(
                _box_entry(scaled[s], status[s], cats[s], iou[s], level[s], best[s] if draw_best[s] else None, names)
            )
        out["images"].append(entry)
    if levels_img is not None:
        k = index_of[levels_img]
        out["images"][k]["positives"] = _level_positives(res, corners, k, names)
        out["levels"] = k
    out["worst"] = [index_of[r] for r in worst]
    out["classes"] = [_strip_entry(s, box_pos) for s in strips]
    return out


def _strip_entry(strip: dict, box_pos: dict) -> dict:
    """One class strip: the class's counts and its crops as ``[image index, box index]``."""
    return {
        **{key: strip[key] for key in ("category", "category_id", "instances", "without_positive")},
        "crops": [list(box_pos[r]) for r in strip["rows"]],
    }


def _empty_plan(preset, names: list) -> dict:
    """The plan's fields before any image is added (what an empty gallery reports)."""
    return {
        "preset": str(getattr(preset, "name", "")),
        "metric": "ratio metric" if isinstance(preset, YoloV5Preset) else "IoU",
        "images": [],
        "worst": [],
        "levels": None,
        "classes": [],
        "statuses": list(STATUSES),
        "level_names": names,
        "pos_iou": float(preset.pos_iou) if getattr(preset, "assigner", "max_iou") == "max_iou" else None,
    }


def _scaled_boxes(table: BoxTable, start: np.ndarray, rows: list) -> np.ndarray:
    """The chosen images' boxes in the resized image, ``(boxes, 4)`` float32, in table order."""
    return np.concatenate(
        [np.asarray(table.scaled[int(start[r]) : int(start[r + 1])], np.float32).reshape(-1, 4) for r in rows]
    )


def _box_entry(xyxy, status, category, iou, level, best_anchor, names: list) -> dict:
    """One box of an image entry: its corners, status, class, best IoU and level, and the best anchor to draw."""
    return {
        "xyxy": [float(v) for v in xyxy],
        "status": int(status),
        "category": str(category),
        "best_iou": float(iou),
        "best_level": names[int(level)] if int(level) < len(names) else str(level),
        "best_anchor": [float(v) for v in best_anchor] if best_anchor is not None else None,
    }


def _image_entry(ds, geo: dict, r: int, k: int) -> dict:
    """The gallery entry of dataset image ``r`` (``k``-th chosen): ids, sizes, its place in
    the padded input; no boxes."""
    return {
        "row": int(r),
        "image_id": int(ds.image_ids[r]),
        "file_name": None if ds.file_names is None else str(ds.file_names[r]),
        "width": float(ds.widths[r]),
        "height": float(ds.heights[r]),
        "resized": [int(geo["rw"][k]), int(geo["rh"][k])],
        "padded": [int(geo["pw"][k]), int(geo["ph"][k])],
        "offset": [int(geo["ox"][k]), int(geo["oy"][k])],
        "boxes": [],
        "positives": None,
    }


def _level_positives(res, corners, k: int, names: list) -> dict | None:
    """The positive anchors of chosen image ``k`` as corner boxes per level name; None when it has none."""
    m = np.asarray(res.pos_image) == k
    if not m.any():
        return None
    xy = corners(np.asarray(res.pos_image)[m], np.asarray(res.pos_anchor)[m], np.asarray(res.pos_level)[m])
    lv = np.asarray(res.pos_level)[m].astype(np.int64)
    return {
        names[v] if v < len(names) else str(v): xy[lv == v].tolist()
        for v in range(len(names) or int(lv.max(initial=0)) + 1)
    }
