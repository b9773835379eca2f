"""The YOLOv5 anchor assignment and AutoAnchor's fit figures, as ultralytics/yolov5 computes them.

Preset (:data:`YOLOV5`): the default P3-P5 anchors of ``models/yolov5*.yaml`` -- ``10,13 16,30 33,23``
(stride 8), ``30,61 62,45 59,119`` (16), ``116,90 156,198 373,326`` (32) in pixels of the network
input -- with ``anchor_t = 4.0`` (``data/hyps/hyp.scratch-*.yaml``) and the neighbour-cell bias
``g = 0.5`` of ``utils/loss.py``.

Letterbox (:func:`letterbox_geometry`): ``utils/augmentations.py`` ``letterbox(im, 640, auto=True,
stride=32)``, the minimum-rectangle letterbox YOLOv5 uses for inference on single images
(``detect.py`` through ``LoadImages``): ``r = min(640 / h, 640 / w)``, resized size
``round(w r) x round(h r)`` (Python's round, half to even), each side padded up to a multiple of 32,
the padding split evenly (``dw / 2`` left). Boxes move as ``LoadImagesAndLabels.__getitem__`` moves
labels (:func:`letterbox_boxes`), in float32: ``x = (r w) (x_norm - w_norm / 2) + dw / 2``, clipped
to ``[0, W - 0.001]`` by ``xyxy2xywhn(clip=True, eps=1e-3)``, then normalised by the padded size.
Training at 640 without ``--rect`` pads every image to 640 x 640 instead; rectangular validation
pads a whole aspect-sorted batch to one shape -- both give the same box sizes in pixels (so the
same width/height matches) but other grids.

Assignment (:func:`assign_yolov5`), ``utils/loss.py`` ``ComputeLoss.build_targets`` per level with
grid ``nx = W / stride``, ``ny = H / stride``:

1. ``t = (cx, cy, w, h) / (W, H) * (nx, ny, nx, ny)`` in float32 (box in grid units);
2. anchor ``a`` matches when ``max(max(r, 1 / r)) < anchor_t`` with ``r = (w, h) / anchor_a`` (both
   in grid units): the width/height ratio test, no IoU;
3. each match takes its centre cell ``floor(cx), floor(cy)`` and, with ``g = 0.5``, the left
   neighbour when ``cx % 1 < 0.5 and cx > 1``, the upper when ``cy % 1 < 0.5 and cy > 1``, the right
   when ``(nx - cx) % 1 < 0.5 and nx - cx > 1``, the lower likewise (so at most 3 cells per
   anchor); cell indices are clamped to the grid.

Every (box, level, anchor, cell) produced is one entry of the loss (box and class losses sum over
them); two boxes can therefore claim the same anchor. In the
:class:`~imbalance_cli.anchors.rules.MatchOutput` returned:

* ``pos_*`` arrays: one row per entry (``pos_anchor`` indexes the image's anchors ordered level,
  row, column, anchor -- the order of the Detect head's flattened outputs), in the order they are
  produced (box chunk, level, cell offset), not sorted by image;
* ``pos_iou``: not an IoU -- YOLOv5 never computes one for assignment. It holds the entry's
  **width/height ratio metric** ``x = min(min(r, 1 / r))`` over width and height (AutoAnchor's
  ``metric()``), in (1 / anchor_t, 1];
* ``box_max_iou``: each box's best ratio metric over all nine anchors (AutoAnchor's ``best``);
  ``box_best_level`` / ``box_best_anchor``: where it is attained (first in anchor order), the
  anchor index taken at the box's own (clamped) centre cell;
* ``ignored_per_image``: zeros (YOLOv5 ignores no anchor).

AutoAnchor (:func:`autoanchor_metric`): ``utils/autoanchor.py`` ``check_anchors`` /
``metric()``: ``wh`` = label width/height times ``640 * (w, h) / max(w, h)`` of its image (times a
random 0.9-1.1 scale in YOLOv5; 1 here unless a seed is given), ``x = min(r, 1 / r).min(2)``,
``bpr = mean(x.max(1) > 1 / thr)``, ``aat = mean((x > 1 / thr).sum(1))``; YOLOv5 keeps the anchors
when ``bpr > 0.98``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imbalance_cli.anchors.rules import MatchOutput
from imbalance_cli.errors import InputError

F32 = np.float32
#: Rows per vectorised chunk of :func:`assign_yolov5` (bounds temporary memory).
CHUNK = 200_000


@dataclass(frozen=True)
class YoloV5Preset:
    """YOLOv5's anchors, strides, letterbox and assignment constants (see module docstring).

    ``anchors[l]`` are ``(w, h)`` pairs in pixels of the letterboxed input of level ``l``.
    ``pos_iou`` / ``neg_iou`` are the ratio-metric threshold ``1 / anchor_t`` (what the report's
    "IoU" fields mean for this preset).
    """

    name: str = "yolov5"
    anchors: tuple[tuple[tuple[float, float], ...], ...] = (
        ((10, 13), (16, 30), (33, 23)),
        ((30, 61), (62, 45), (59, 119)),
        ((116, 90), (156, 198), (373, 326)),
    )
    strides: tuple[int, ...] = (8, 16, 32)
    level_names: tuple[str, ...] = ("P3", "P4", "P5")
    img_size: int = 640
    pad_stride: int = 32
    anchor_t: float = 4.0
    offset_g: float = 0.5
    kind: str = "yolov5"
    assigner: str = "yolov5"
    matcher: str = "yolov5"
    allow_low_quality: bool = False
    bpr_good: float = 0.98

    @property
    def num_levels(self) -> int:
        """Number of output levels."""
        return len(self.strides)

    def anchors_per_location(self, level: int) -> int:
        """Anchors per grid cell of ``level``."""
        return len(self.anchors[level])

    @property
    def pos_iou(self) -> float:
        """The ratio-metric threshold ``1 / anchor_t`` (stands in for the IoU threshold in reports)."""
        return 1.0 / self.anchor_t

    @property
    def neg_iou(self) -> float:
        """Same as :attr:`pos_iou`: YOLOv5 has one threshold."""
        return 1.0 / self.anchor_t

    def anchor_array(self) -> np.ndarray:
        """All anchors ``(L * A, 2)`` float64, level-major."""
        return np.array([a for lv in self.anchors for a in lv], dtype=np.float64)


#: The default YOLOv5 (v6/v7) preset.
YOLOV5 = YoloV5Preset()


def validate(preset: YoloV5Preset, where: str | None = None) -> YoloV5Preset:
    """Check a YOLOv5 preset's fields, their rules and limits; InputError naming ``where`` and the field otherwise
    (:func:`imbalance_cli.anchors.yolov5_schema.validate_yolov5`)."""
    from imbalance_cli.anchors.yolov5_schema import validate_yolov5

    return validate_yolov5(preset, where)


# ---------------------------------------------------------------------------------------------------
def letterbox_geometry(heights, widths, preset: YoloV5Preset = YOLOV5):
    """YOLOv5 ``letterbox(auto=True)`` geometry per image: ``(r, padded_h, padded_w, pad_x, pad_y)``.

    ``r`` float64 scale; padded sizes int64 (multiples of ``pad_stride``); ``pad_x``/``pad_y`` the
    float half paddings ``dw / 2``, ``dh / 2`` that shift the labels.
    """
    h = np.asarray(heights, dtype=np.float64)
    w = np.asarray(widths, dtype=np.float64)
    s = float(preset.img_size)
    r = np.minimum(s / h, s / w)
    new_w = np.round(w * r).astype(np.int64)  # numpy rounds half to even like Python's round()
    new_h = np.round(h * r).astype(np.int64)
    dw = np.mod(int(preset.img_size) - new_w, preset.pad_stride)
    dh = np.mod(int(preset.img_size) - new_h, preset.pad_stride)
    return r, new_h + dh, new_w + dw, dw / 2.0, dh / 2.0


@np.errstate(over="ignore", invalid="ignore")  # a box beyond float32 range: inf/NaN, as YOLOv5's float32 labels
def letterbox_boxes(boxes_xyxy, heights, widths, preset: YoloV5Preset = YOLOV5) -> np.ndarray:
    """Original-pixel boxes (N, 4) -> float32 boxes in pixels of the letterboxed input, per box's image size.

    YOLOv5's own label arithmetic (``LoadImagesAndLabels.__getitem__``), in float32 as its numpy
    labels are: the normalised label ``(cx, cy, w, h)`` (recovered exactly from the pixel box), then
    ``xywhn2xyxy(label, r * w0, r * h0, padw=dw / 2, padh=dh / 2)`` and the clip of
    ``xyxy2xywhn(clip=True, eps=1e-3)``: x to ``[0, W - 0.001]``, y to ``[0, H - 0.001]`` of the
    padded input. The normalised values ``build_targets`` receives are then ``xyxy2xywhn`` of these
    (:func:`assign_yolov5` does that division).
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    h0 = np.asarray(heights, dtype=np.float64)
    w0 = np.asarray(widths, dtype=np.float64)
    r, ph, pw, px, py = letterbox_geometry(h0, w0, preset)
    cx = ((b[:, 0] + b[:, 2]) / 2 / w0).astype(F32)  # the label file's float32 values (exact round trip)
    cy = ((b[:, 1] + b[:, 3]) / 2 / h0).astype(F32)
    w = ((b[:, 2] - b[:, 0]) / w0).astype(F32)
    h = ((b[:, 3] - b[:, 1]) / h0).astype(F32)
    sw, sh = (r * w0).astype(F32), (r * h0).astype(F32)  # ratio[0] * w0: a Python float, float32 in the product
    half = F32(2)
    x1 = sw * (cx - w / half) + px.astype(F32)
    y1 = sh * (cy - h / half) + py.astype(F32)
    x2 = sw * (cx + w / half) + px.astype(F32)
    y2 = sh * (cy + h / half) + py.astype(F32)
    xmax = (pw - 1e-3).astype(F32)  # clip_boxes(x, (h - eps, w - eps))
    ymax = (ph - 1e-3).astype(F32)
    x1, x2 = np.clip(x1, F32(0), xmax), np.clip(x2, F32(0), xmax)
    y1, y2 = np.clip(y1, F32(0), ymax), np.clip(y2, F32(0), ymax)
    return np.stack([x1, y1, x2, y2], axis=1).astype(F32)


def level_grids(preset: YoloV5Preset, padded_h, padded_w):
    """Per level: grid heights and widths ``(L, n)`` and the index of each level's first anchor ``(L, n)``."""
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    gh = np.stack([ph // s for s in preset.strides])
    gw = np.stack([pw // s for s in preset.strides])
    per = np.array([preset.anchors_per_location(lv) for lv in range(preset.num_levels)], np.int64)[:, None]
    counts = gh * gw * per
    offset = np.concatenate([np.zeros((1, counts.shape[1]), np.int64), np.cumsum(counts, 0)[:-1]], 0)
    return gh, gw, offset


def num_anchors(preset: YoloV5Preset, padded_h, padded_w) -> np.ndarray:
    """Anchors (grid cells x anchors per cell, all levels) per image."""
    gh, gw, _ = level_grids(preset, padded_h, padded_w)
    per = np.array([preset.anchors_per_location(lv) for lv in range(preset.num_levels)], np.int64)[:, None]
    return (gh * gw * per).sum(0)


def ratio_metric(wh: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """AutoAnchor's ratio metric ``x[i, k] = min(min(r, 1 / r))`` with ``r = wh_i / anchor_k`` (float64)."""
    wh = np.asarray(wh, dtype=np.float64).reshape(-1, 1, 2)
    k = np.asarray(anchors, dtype=np.float64).reshape(1, -1, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = wh / k
        x = np.minimum(r, 1.0 / r).min(axis=2)
    return np.nan_to_num(x, nan=0.0)


def autoanchor_metric(wh: np.ndarray, anchors: np.ndarray, thr: float = 4.0) -> dict:
    """``check_anchors``' ``metric()``: best possible recall and anchors above threshold per label.

    ``wh`` (N, 2) label sizes in pixels of the 640 input; ``anchors`` (K, 2) in pixels.
    Returns ``{"bpr", "aat", "labels"}`` (None for no labels).
    """
    x = ratio_metric(wh, anchors)
    if len(x) == 0:
        return {"bpr": None, "aat": None, "labels": 0}
    x32 = x.astype(F32)
    best = x32.max(axis=1)
    t = F32(1.0 / thr)
    return {"bpr": float((best > t).mean()), "aat": float((x32 > t).sum(axis=1).mean()), "labels": int(len(x))}


def autoanchor_wh(boxes_xyxy, heights, widths, preset: YoloV5Preset = YOLOV5, seed: int | None = None) -> np.ndarray:
    """Label sizes as ``check_anchors`` builds them: normalised w, h times ``img_size * (w, h) / max(w, h)``.

    ``seed`` applies YOLOv5's random per-image scale ``uniform(0.9, 1.1)`` (numpy Generator); None: scale 1.
    Boxes are given per box with their image's size.
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    h = np.asarray(heights, dtype=np.float64)
    w = np.asarray(widths, dtype=np.float64)
    m = np.maximum(h, w)
    sw, sh = preset.img_size * w / m, preset.img_size * h / m
    wh = np.stack([(b[:, 2] - b[:, 0]) / w * sw, (b[:, 3] - b[:, 1]) / h * sh], axis=1)
    if seed is not None:
        wh = wh * np.random.default_rng(seed).uniform(0.9, 1.1, size=(len(wh), 1))
    return wh


# ---------------------------------------------------------------------------------------------------
@np.errstate(invalid="ignore")  # a NaN box (beyond float32) matches nothing: comparisons with NaN are false
def assign_yolov5(
    preset: YoloV5Preset,
    boxes: np.ndarray,
    box_image: np.ndarray,
    padded_h: np.ndarray,
    padded_w: np.ndarray,
    *,
    semantics: str = "yolov5",
    images=None,
) -> MatchOutput:
    """YOLOv5 ``build_targets`` over a whole dataset (see module docstring for the rule and the fields).

    ``boxes`` (N, 4) ``x1, y1, x2, y2`` in pixels of the letterboxed input (:func:`letterbox_boxes`),
    ``box_image`` (N,) image rows, ``padded_h``/``padded_w`` (n_img,) letterboxed sizes.
    ``images``: only boxes of these image rows take part (the others get no entry and metric 0).
    """
    if semantics not in ("yolov5", "auto", None):
        raise InputError(f"the yolov5 preset is labelled by YOLOv5's build_targets only, not {semantics!r}")
    validate(preset)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    bimg = np.asarray(box_image, dtype=np.int64).reshape(-1)
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    n_img, N = len(ph), len(b)
    gh, gw, offset = level_grids(preset, ph, pw)
    active = np.ones(N, bool)
    if images is not None:
        keep = np.zeros(n_img, bool)
        keep[np.asarray(images, dtype=np.int64)] = True
        active = keep[bimg]
    outs = {k: [] for k in ("img", "anc", "lvl", "box", "x")}
    best_x = np.zeros(N, np.float64)
    best_anchor = np.zeros(N, np.int64)
    best_level = np.zeros(N, np.int64)
    all_k = preset.anchor_array()
    idx_all = np.flatnonzero(active)
    for start in range(0, len(idx_all), CHUNK):
        idx = idx_all[start : start + CHUNK]
        bi = bimg[idx]
        bb = b[idx].astype(F32)
        cxn, cyn, wn, hn = _xywhn(bb, pw[bi].astype(F32), ph[bi].astype(F32))
        # best ratio metric over every anchor (AutoAnchor's best), on pixel sizes
        xm = ratio_metric(np.stack([wn.astype(np.float64) * pw[bi], hn.astype(np.float64) * ph[bi]], 1), all_k)
        kbest = np.argmax(xm, axis=1)
        best_x[idx] = xm[np.arange(len(idx)), kbest]
        for lv in range(len(preset.strides)):
            _level_positives(preset, lv, (cxn, cyn, wn, hn), gw, gh, offset, bi, idx, outs)
        best_anchor[idx], best_level[idx] = _best_anchor(preset, kbest, cxn, cyn, gw, gh, offset, bi)
    # order: box chunk, level, cell offset, box (not sorted by image: the statistics only bincount them)
    return MatchOutput(
        pos_image=_cat(outs["img"], np.int32),
        pos_anchor=_cat(outs["anc"], np.int64),
        pos_level=_cat(outs["lvl"], np.int8),
        pos_box=_cat(outs["box"], np.int32),
        pos_iou=_cat(outs["x"], np.float32),
        ignored_per_image=np.zeros(n_img, np.int64),
        box_max_iou=best_x.astype(np.float32),
        box_best_anchor=best_anchor,
        box_best_level=best_level.astype(np.int8),
    )


def _xywhn(bb: np.ndarray, W: np.ndarray, H: np.ndarray) -> tuple:
    """xyxy2xywhn on the letterboxed labels (float32, as the dataset's numpy labels): ``(cx, cy, w, h)`` / size."""
    cxn = ((bb[:, 0] + bb[:, 2]) / F32(2)) / W
    cyn = ((bb[:, 1] + bb[:, 3]) / F32(2)) / H
    wn = (bb[:, 2] - bb[:, 0]) / W
    hn = (bb[:, 3] - bb[:, 1]) / H
    return cxn, cyn, wn, hn


def _cat(parts: list, dt) -> np.ndarray:
    """The chunks' entries concatenated as ``dt`` (empty without any)."""
    return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)


def _level_positives(preset: YoloV5Preset, lv: int, xywhn, gw, gh, offset, bi, idx, outs: dict) -> None:
    """``build_targets`` on level ``lv`` for boxes ``idx`` (images ``bi``, normalised centre and size ``xywhn``):
    each (box, anchor) within ``anchor_t`` at the centre cell and the neighbouring cells it reaches, appended to
    ``outs``."""
    cxn, cyn, wn, hn = xywhn
    g = F32(preset.offset_g)
    nx, ny = gw[lv, bi].astype(F32), gh[lv, bi].astype(F32)
    gx, gy, tw, th = cxn * nx, cyn * ny, wn * nx, hn * ny
    anc = np.asarray(preset.anchors[lv], dtype=F32) / F32(preset.strides[lv])  # grid units, as Detect.anchors
    A = len(anc)
    with np.errstate(divide="ignore", invalid="ignore"):
        rw = tw[:, None] / anc[None, :, 0]
        rh = th[:, None] / anc[None, :, 1]
        worst = np.maximum(np.maximum(rw, F32(1) / rw), np.maximum(rh, F32(1) / rh))
        match = worst < F32(preset.anchor_t)  # (n, A)
        metric = np.minimum(np.minimum(rw, F32(1) / rw), np.minimum(rh, F32(1) / rh))  # ratio metric
    # cells: centre, left, up, right, down (build_targets' offsets j, k, l, m)
    gxi, gyi = nx - gx, ny - gy
    use = [
        np.ones(len(idx), bool),
        (np.mod(gx, F32(1)) < g) & (gx > 1),
        (np.mod(gy, F32(1)) < g) & (gy > 1),
        (np.mod(gxi, F32(1)) < g) & (gxi > 1),
        (np.mod(gyi, F32(1)) < g) & (gyi > 1),
    ]
    offs = ((0, 0), (1, 0), (0, 1), (-1, 0), (0, -1))
    gwl, ghl = gw[lv, bi], gh[lv, bi]
    for (ox, oy), u in zip(offs, use):
        ci = np.clip(np.trunc(gx - g * F32(ox)).astype(np.int64), 0, gwl - 1)
        cj = np.clip(np.trunc(gy - g * F32(oy)).astype(np.int64), 0, ghl - 1)
        rows, a = np.nonzero(match & u[:, None])
        if not len(rows):
            continue
        im = bi[rows]
        outs["img"].append(im.astype(np.int32))
        outs["anc"].append(offset[lv, im] + (cj[rows] * gwl[rows] + ci[rows]) * A + a)
        outs["lvl"].append(np.full(len(rows), lv, np.int8))
        outs["box"].append(idx[rows].astype(np.int32))
        outs["x"].append(metric[rows, a].astype(np.float32))


def _best_anchor(preset: YoloV5Preset, kbest, cxn, cyn, gw, gh, offset, bi) -> tuple[np.ndarray, np.ndarray]:
    """The best anchor's index at the box's own centre cell on its best level (the level of anchor ``kbest``),
    and that level."""
    lv_of = np.searchsorted(np.cumsum([len(a) for a in preset.anchors]), kbest, side="right")
    first = np.concatenate([[0], np.cumsum([len(a) for a in preset.anchors])])[lv_of]
    kk = kbest - first
    gwb, ghb = gw[lv_of, bi], gh[lv_of, bi]
    ci = np.clip(np.trunc(cxn * gwb.astype(F32)).astype(np.int64), 0, gwb - 1)
    cj = np.clip(np.trunc(cyn * ghb.astype(F32)).astype(np.int64), 0, ghb - 1)
    per = np.array([len(a) for a in preset.anchors], np.int64)[lv_of]
    return offset[lv_of, bi] + (cj * gwb + ci) * per + kk, lv_of


# --------------------------------------------------------------------------------------------------- TOML
# The keys of a yolov5 preset TOML and their checks: imbalance_cli.anchors.yolov5_schema.TOML_FIELDS. The kind,
# its built-in preset and its assigner are registered in imbalance_cli.anchors.kinds.KINDS.


def preset_from_toml(path) -> YoloV5Preset:
    """Load a yolov5 preset TOML (``kind = "yolov5"``; ``anchors`` = per level a list of ``[w, h]`` pairs in
    pixels of the letterboxed input; other fields default to :data:`YOLOV5`'s). Every field is checked for its
    exact type and range (:mod:`imbalance_cli.anchors.yolov5_schema`); InputError naming the file and field."""
    from imbalance_cli.anchors.yolov5_schema import yolov5_from_toml

    return yolov5_from_toml(path)
