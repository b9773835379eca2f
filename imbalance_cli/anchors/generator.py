"""Anchor generation for a preset and an image size, in each framework's own arithmetic.

Everything geometric lives here: the resize (:func:`resized_sizes`, ``preset.resize.rule``), the box
transform and filtering (:func:`scale_boxes`, :func:`box_keep`, ``preset.box_rule``), the base anchors
(:func:`base_anchors`, ``preset.anchor_rule``), the grid sizes and steps (:func:`level_grids`,
``preset.stride_rule``) and every anchor's coordinates (:func:`anchor_coords`). The engines get grid
sizes, steps, centre offsets and coordinates only through these functions.

Order of anchors in an image: level, then row i, column j, then base anchor (torchvision,
mmdetection and detectron2 all lay them so). SSD default boxes follow torchvision's
``DefaultBoxGenerator`` (centres ``(j + 0.5) / (W / step)``, width/height pairs
``[s_k, s_k], [s'_k, s'_k], [s_k sqrt(a), s_k / sqrt(a)], [s_k / sqrt(a), s_k sqrt(a)]``, clipped to
[0, 1], then converted to pixels of the resized image). Each image is treated as a batch of one
(no padding to a larger neighbour). All arithmetic is float32 where the framework's is, so anchors
match to the bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imbalance_cli.anchors.presets import AnchorPreset

F32 = np.float32


def resized_size(height, width, preset: AnchorPreset) -> tuple[int, int]:
    """(height, width) of an image after the preset's resize, before padding (see :func:`resized_sizes`)."""
    h, w = resized_sizes(np.array([height]), np.array([width]), preset)
    return int(h[0]), int(w[0])


def padded_size(height, width, preset: AnchorPreset) -> tuple[int, int]:
    """(height, width) after resize and padding up to a multiple of ``resize.size_divisible``."""
    h, w = padded_sizes(np.array([height]), np.array([width]), preset)
    return int(h[0]), int(w[0])


def _scale(h: np.ndarray, w: np.ndarray, r) -> np.ndarray | None:
    """The resize scale in double precision, ``min(min_size / min(H, W), max_size / max(H, W))``."""
    lo, hi = np.minimum(h, w).astype(np.float64), np.maximum(h, w).astype(np.float64)
    s = None
    with np.errstate(divide="ignore"):
        if r.min_size is not None:
            s = float(r.min_size) / lo
        if r.max_size is not None:
            s2 = float(r.max_size) / hi
            s = s2 if s is None else np.minimum(s, s2)
    return s


def resized_sizes(heights: np.ndarray, widths: np.ndarray, preset: AnchorPreset) -> tuple[np.ndarray, np.ndarray]:
    """Sizes after the preset's resize, vectorised (int64 outputs); ``preset.resize.rule`` picks the arithmetic.

    * ``torchvision`` -- ``GeneralizedRCNNTransform._resize_image_and_masks`` (torchvision/models/
      detection/transform.py) in eager mode: ``s = min(min_size / min(H, W), max_size / max(H, W))``
      from Python ints in double precision, then ``interpolate(scale_factor=s,
      recompute_scale_factor=True)`` gives ``floor(H s) x floor(W s)``. A side that would be 0
      makes torchvision raise; see :func:`resize_errors`.
    * ``mmcv`` -- mmcv ``rescale_size`` / ``_scale_size`` (mmcv/image/geometric.py, used by
      mmdetection's ``Resize(keep_ratio=True)``): the same double scale, size ``int(W s + 0.5)``.
    * ``detectron2`` -- ``ResizeShortestEdge.get_output_shape`` (detectron2/data/transforms/
      augmentation_impl.py): short side set to ``min_size``, long side ``min_size / short * long``;
      if the long side exceeds ``max_size`` both are multiplied by ``max_size / long``; each side
      ``int(x + 0.5)``.
    """
    h = np.asarray(heights, dtype=np.float64).astype(np.int64)
    w = np.asarray(widths, dtype=np.float64).astype(np.int64)
    r = preset.resize
    if r.fixed is not None:
        return np.full(h.shape, int(r.fixed[0]), np.int64), np.full(w.shape, int(r.fixed[1]), np.int64)
    if r.rule == "detectron2":
        hf, wf = h.astype(np.float64), w.astype(np.float64)
        size = float(r.min_size)
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = size / np.minimum(hf, wf)
            nh = np.where(hf < wf, size, scale * hf)
            nw = np.where(hf < wf, scale * wf, size)
            if r.max_size is not None:
                mx = np.maximum(nh, nw)
                big = mx > float(r.max_size)
                s2 = float(r.max_size) * 1.0 / mx
                nh = np.where(big, nh * s2, nh)
                nw = np.where(big, nw * s2, nw)
        return np.floor(nh + 0.5).astype(np.int64), np.floor(nw + 0.5).astype(np.int64)
    s = _scale(h, w, r)
    if s is None:
        return h, w
    if r.rule == "mmcv":
        return np.floor(h * s + 0.5).astype(np.int64), np.floor(w * s + 0.5).astype(np.int64)
    return np.floor(h * s).astype(np.int64), np.floor(w * s).astype(np.int64)


def resize_errors(heights: np.ndarray, widths: np.ndarray, preset: AnchorPreset) -> np.ndarray:
    """Boolean mask of images the framework cannot resize: a resized side of 0 pixels.

    torchvision raises for such an image (e.g. 1 x 1334: ``floor(1 * 1333 / 1334) = 0``); the
    other frameworks would produce an empty image. Such images are refused, never silently resized.
    """
    h, w = resized_sizes(heights, widths, preset)
    return (h < 1) | (w < 1)


def padded_sizes(heights: np.ndarray, widths: np.ndarray, preset: AnchorPreset) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`padded_size` (int64 outputs)."""
    h, w = resized_sizes(heights, widths, preset)
    d = int(preset.resize.size_divisible)
    return -(-h // d) * d, -(-w // d) * d


@np.errstate(over="ignore")  # a coordinate beyond float32 becomes inf, as in the framework's float32 tensors
def scale_boxes(boxes_xyxy: np.ndarray, heights, widths, preset: AnchorPreset, integer=None) -> np.ndarray:
    """Scale original-pixel boxes into the resized image in the framework's arithmetic (float32 out).

    ``boxes_xyxy`` is float64 ``(N, 4)`` (``x2 = x + w`` of the file); ``heights``/``widths`` the
    boxes' image sizes (N,). ``preset.box_rule``:

    * ``torchvision`` -- COCO reference ``ConvertCocoPolysToMask`` (references/detection/
      coco_utils.py) builds ``x2 = float32(x) + float32(w)``; ``GeneralizedRCNNTransform``'s
      ``resize_boxes`` multiplies by ``float32(new) / float32(old)`` per axis. No clipping.
    * ``mmdet`` -- ``CocoDataset.parse_data_info`` keeps ``[x, y, x + w, y + h]`` in double, stored
      as float32; ``Resize`` rescales by ``float32(new / old)`` (``HorizontalBoxes.rescale_``) and
      clips to the resized image (``clip_object_border=True``).
    * ``detectron2`` -- ``BoxMode.convert`` builds ``x2 = float32(x) + float32(w)``;
      ``transform_instance_annotations`` scales in double by ``new / old`` (``ResizeTransform``),
      clips to ``[0, new size]``, and ``Boxes`` stores float32. A bbox whose four JSON numbers are
      integers (``integer``, per box; :attr:`Dataset.integer_boxes`) stays an int64 array there:
      ``x2 = x + w`` in integers, and ``ResizeTransform.apply_coords`` writes the scaled values back
      into that array, truncating them to whole pixels (e.g. 1123 x 800 / 1234 = 728.04 -> 728).
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    h = np.asarray(heights, dtype=np.float64).reshape(-1)
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    nh, nw = resized_sizes(h, w, preset)
    rule = preset.box_rule
    if rule == "mmdet":
        sx = (nw / w.astype(np.int64)).astype(F32)
        sy = (nh / h.astype(np.int64)).astype(F32)
        c = b.astype(F32)
        out = np.stack((c[:, 0] * sx, c[:, 1] * sy, c[:, 2] * sx, c[:, 3] * sy), axis=1)
        nwf, nhf = nw.astype(F32), nh.astype(F32)
        out[:, 0::2] = np.clip(out[:, 0::2], F32(0), nwf[:, None])
        out[:, 1::2] = np.clip(out[:, 1::2], F32(0), nhf[:, None])
        return out.astype(F32)
    x1 = b[:, 0].astype(F32)
    y1 = b[:, 1].astype(F32)
    x2 = x1 + (b[:, 2] - b[:, 0]).astype(F32)
    y2 = y1 + (b[:, 3] - b[:, 1]).astype(F32)
    if rule == "detectron2":
        sx = nw * 1.0 / w.astype(np.int64)
        sy = nh * 1.0 / h.astype(np.int64)
        out = np.stack(
            (
                x1.astype(np.float64) * sx,
                y1.astype(np.float64) * sy,
                x2.astype(np.float64) * sx,
                y2.astype(np.float64) * sy,
            ),
            axis=1,
        )
        if integer is not None:
            ints = np.asarray(integer, dtype=bool).reshape(-1)
            if ints.any():
                bi = b[ints]  # whole numbers: x2 = x + w is exact in float64 as in int64
                out[ints] = np.trunc(bi * np.stack((sx[ints], sy[ints], sx[ints], sy[ints]), axis=1))
        out = np.maximum(out, 0.0)
        out = np.minimum(out, np.stack((nw, nh, nw, nh), axis=1).astype(np.float64))
        return out.astype(F32)
    return resize_boxes(np.stack((x1, y1, x2, y2), axis=1), h, w, preset)


def resize_boxes(boxes_f32: np.ndarray, heights, widths, preset: AnchorPreset) -> np.ndarray:
    """torchvision ``resize_boxes`` (torchvision/models/detection/transform.py): float32 corners times
    ``float32(new) / float32(old)`` per axis, in float32; sizes from :func:`resized_sizes`."""
    b = np.asarray(boxes_f32, dtype=F32).reshape(-1, 4)
    h = np.asarray(heights, dtype=np.float64).reshape(-1)
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    nh, nw = resized_sizes(h, w, preset)
    rh = nh.astype(F32) / h.astype(np.int64).astype(F32)
    rw = nw.astype(F32) / w.astype(np.int64).astype(F32)
    return np.stack((b[:, 0] * rw, b[:, 1] * rh, b[:, 2] * rw, b[:, 3] * rh), axis=1).astype(F32)


@np.errstate(over="ignore")  # w * h of a box beyond float64 range: inf, kept as the framework keeps it
def box_keep(preset: AnchorPreset, boxes_xyxy: np.ndarray, heights, widths, area=None, integer=None) -> np.ndarray:
    """Which (already valid, non-crowd) boxes the framework's data pipeline keeps as targets.

    * ``torchvision`` -- every box with ``w > 0`` and ``h > 0`` (the Dataset's validity rule).
    * ``mmdet`` -- ``CocoDataset.parse_data_info`` drops ``area <= 0``, ``w < 1``, ``h < 1`` and
      boxes without overlap with the image (``area`` = the file's ``area`` where given, else w h).
    * ``detectron2`` -- ``filter_empty_instances``: after resize and clipping, a box whose side is
      not larger than 1e-5 (in float32) is dropped (``integer``: as :func:`scale_boxes`).
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    keep = np.ones(len(b), bool)
    if preset.box_rule == "mmdet":
        w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        a = w * h if area is None else np.where(np.isfinite(area), np.asarray(area, np.float64), w * h)
        W = np.asarray(widths, np.float64).reshape(-1)
        H = np.asarray(heights, np.float64).reshape(-1)
        iw = np.maximum(0.0, np.minimum(b[:, 2], W) - np.maximum(b[:, 0], 0.0))
        ih = np.maximum(0.0, np.minimum(b[:, 3], H) - np.maximum(b[:, 1], 0.0))
        keep = (iw * ih != 0) & (a > 0) & (w >= 1) & (h >= 1)
    elif preset.box_rule == "detectron2":
        s = scale_boxes(b, heights, widths, preset, integer)
        keep = ((s[:, 2] - s[:, 0]) > F32(1e-5)) & ((s[:, 3] - s[:, 1]) > F32(1e-5))
    return keep


def base_anchors(preset: AnchorPreset, level: int) -> np.ndarray:
    """Base (cell) anchors of a grid level, float32 ``(K, 4)``, in the framework's order and arithmetic.

    ``preset.anchor_rule``:

    * ``torchvision`` -- ``AnchorGenerator.generate_anchors`` (torchvision/models/detection/
      anchor_utils.py): ``h = size sqrt(r)``, ``w = size / sqrt(r)`` in float32, ratio-major,
      ``round([-w, -h, w, h] / 2)``.
    * ``mmdet`` -- ``AnchorGenerator.gen_single_level_base_anchors`` (mmdet/models/task_modules/
      prior_generators/anchor_generator.py), ``scale_major=True``: base size ``b`` = the level's
      stride, scale ``size / b`` as float32, ``ws = float32(b / sqrt(r)) * scale``, centre
      ``center_offset * b``, ``[c - ws/2, c - hs/2, c + ws/2, c + hs/2]``, ratio-major, unrounded.
    * ``detectron2`` -- ``DefaultAnchorGenerator.generate_cell_anchors`` (detectron2/modeling/
      anchor_generator.py): size-major (for each size, every ratio), ``w = sqrt(size^2 / r)``,
      ``h = r w`` in double, ``[-w/2, -h/2, w/2, h/2]`` stored as float32.
    """
    rule = preset.anchor_rule
    if rule == "detectron2":
        out = []
        for size in preset.sizes[level]:
            area = float(size) ** 2.0
            for r in preset.aspect_ratios[level]:
                w = math.sqrt(area / float(r))
                h = float(r) * w
                out.append([-w / 2.0, -h / 2.0, w / 2.0, h / 2.0])
        return np.asarray(out, dtype=np.float64).astype(F32)
    if rule == "mmdet":
        b = float(preset.strides[level])
        scales = (np.asarray(preset.sizes[level], np.float64) / b).astype(F32)
        h_ratios = np.sqrt(np.asarray(preset.aspect_ratios[level], np.float64).astype(F32))
        w_ratios = F32(1) / h_ratios
        ws = ((F32(b) * w_ratios)[:, None] * scales[None, :]).reshape(-1)
        hs = ((F32(b) * h_ratios)[:, None] * scales[None, :]).reshape(-1)
        c = F32(preset.center_offset * b)
        return np.stack([c - F32(0.5) * ws, c - F32(0.5) * hs, c + F32(0.5) * ws, c + F32(0.5) * hs], axis=1).astype(
            F32
        )
    scales = np.asarray(preset.sizes[level], dtype=F32)
    ratios = np.asarray(preset.aspect_ratios[level], dtype=F32)
    h_ratios = np.sqrt(ratios)
    w_ratios = F32(1) / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).reshape(-1)
    hs = (h_ratios[:, None] * scales[None, :]).reshape(-1)
    base = np.stack([-ws, -hs, ws, hs], axis=1) / F32(2)
    return np.round(base).astype(F32)


def ssd_wh_pairs(preset: AnchorPreset, level: int) -> np.ndarray:
    """Relative (w, h) pairs of an SSD level, float32 ``(K, 2)``, clipped to [0, 1] when ``preset.clip``."""
    s = preset.scales
    s_k = s[level]
    s_prime = math.sqrt(s[level] * s[level + 1])
    pairs = [[s_k, s_k], [s_prime, s_prime]]
    for ar in preset.aspect_ratios[level]:
        sq = math.sqrt(ar)
        w, h = s_k * sq, s_k / sq
        pairs.extend([[w, h], [h, w]])
    out = np.asarray(pairs, dtype=np.float64).astype(F32)
    if preset.clip:
        out = np.clip(out, F32(0), F32(1))
    return out


@dataclass(frozen=True)
class LevelLayout:
    """One pyramid level laid on a padded image.

    ``stride`` is the level's nominal stride; ``stride_y`` / ``stride_x`` the steps between anchor
    rows / columns as the framework lays them (equal to ``stride`` under ``stride_rule = "fixed"``;
    ``padded // grid`` under ``"model"``; SSD's float steps for ``kind = "ssd"``).
    """

    name: str
    stride: int
    grid_h: int
    grid_w: int
    per_location: int
    offset: int  # index of the level's first anchor in the concatenated anchor list
    stride_y: float = 0.0
    stride_x: float = 0.0

    @property
    def count(self) -> int:
        """Anchors on this level."""
        return self.grid_h * self.grid_w * self.per_location


def level_grids(preset: AnchorPreset, padded_h, padded_w):
    """Grid sizes and steps of every level for arrays of padded sizes: ``(gh, gw, step_y, step_x)``, each ``(n, L)``.

    Grid size ``ceil(padded / stride)``: what a ResNet-FPN (stride-2 3x3 convolutions with padding
    1) produces on a padded image whose sides are multiples of 32. Steps: ``stride_rule = "fixed"``
    the nominal stride (mmdetection, detectron2); ``"model"`` as torchvision's
    ``AnchorGenerator.forward`` derives them, ``padded // grid`` per axis (e.g. P7 of an 800-pixel
    side: 800 // 7 = 114); SSD: ``padded / (padded / step)`` as ``DefaultBoxGenerator``.
    gh, gw are int64, steps float64 (integer-valued for grid presets).
    """
    ph = np.asarray(padded_h, dtype=np.int64).reshape(-1)
    pw = np.asarray(padded_w, dtype=np.int64).reshape(-1)
    st = np.asarray(preset.strides, dtype=np.int64)[None, :]
    gh = -(-ph[:, None] // st)
    gw = -(-pw[:, None] // st)
    if preset.kind == "ssd":
        sf = st.astype(np.float64)
        sy = ph[:, None] / (ph[:, None] / sf)
        sx = pw[:, None] / (pw[:, None] / sf)
    elif preset.stride_rule == "model":
        sy = (ph[:, None] // np.maximum(gh, 1)).astype(np.float64)
        sx = (pw[:, None] // np.maximum(gw, 1)).astype(np.float64)
    else:
        sy = np.broadcast_to(st, gh.shape).astype(np.float64)
        sx = sy.copy()
    return gh, gw, sy, sx


def level_layout(preset: AnchorPreset, padded_h: int, padded_w: int) -> list[LevelLayout]:
    """Grid sizes (``ceil(padded / stride)``), steps, anchors per location and offsets of every level."""
    gh, gw, sy, sx = level_grids(preset, padded_h, padded_w)
    out, offset = [], 0
    for lvl, stride in enumerate(preset.strides):
        k = preset.anchors_per_location(lvl)
        h, w = int(gh[0, lvl]), int(gw[0, lvl])
        out.append(LevelLayout(preset.level_names[lvl], stride, h, w, k, offset, float(sy[0, lvl]), float(sx[0, lvl])))
        offset += h * w * k
    return out


def num_anchors(preset: AnchorPreset, padded_h, padded_w) -> np.ndarray:
    """Anchors (or points) per image for arrays of padded sizes (int64), by arithmetic only."""
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    total = np.zeros(np.broadcast(ph, pw).shape, dtype=np.int64)
    for lvl, stride in enumerate(preset.strides):
        total += (-(-ph // stride)) * (-(-pw // stride)) * preset.anchors_per_location(lvl)
    return total


def _steps(preset: AnchorPreset, level: int, padded_h, padded_w):
    _, _, sy, sx = level_grids(preset, padded_h, padded_w)
    return sy[:, level], sx[:, level]


def level_shape_params(preset: AnchorPreset, level: int, padded_h: int, padded_w: int):
    """Per base shape of a level: ``(ox1, oy1, wa, ha, step_x, step_y)`` as float64 arrays.

    Anchor ``(i, j, k)`` spans approximately ``x1 = j * step_x + ox1[k]``, width ``wa[k]`` (exactly
    for grid presets, to float32 rounding for SSD). The culled engine uses these to bound which
    grid positions can reach an IoU; exact coordinates always come from :func:`anchor_coords`.
    Steps follow the preset's stride rule for this padded size (see :func:`level_grids`).
    """
    sy, sx = _steps(preset, level, padded_h, padded_w)
    step_y, step_x = float(sy[0]), float(sx[0])
    if preset.kind == "ssd":
        wh = ssd_wh_pairs(preset, level).astype(np.float64)
        wa, ha = wh[:, 0] * padded_w, wh[:, 1] * padded_h
        return 0.5 * step_x - 0.5 * wa, 0.5 * step_y - 0.5 * ha, wa, ha, step_x, step_y
    if preset.kind == "point":
        o = preset.center_offset
        z = np.zeros(1)
        return z + o * step_x, z + o * step_y, z, z.copy(), step_x, step_y
    base = base_anchors(preset, level).astype(np.float64)
    ox = preset.center_offset * step_x if preset.anchor_rule == "detectron2" else 0.0
    oy = preset.center_offset * step_y if preset.anchor_rule == "detectron2" else 0.0
    return base[:, 0] + ox, base[:, 1] + oy, base[:, 2] - base[:, 0], base[:, 3] - base[:, 1], step_x, step_y


def anchor_coords(preset: AnchorPreset, level: int, k, i, j, padded_h, padded_w) -> np.ndarray:
    """Exact float32 coordinates ``(N, 4)`` of anchors (level, base shape ``k``, row ``i``, column ``j``).

    ``k``, ``i``, ``j`` are integer arrays; ``padded_h``/``padded_w`` scalars or arrays (the
    steps of the ``model`` stride rule and SSD depend on them). Grid presets: ``float32(j *
    step_x) + base`` (torchvision ``AnchorGenerator.grid_anchors``, mmdetection
    ``single_level_grid_priors``), detectron2 ``float32((offset + j) * step) + cell anchor``
    (``_create_grid_offsets``); points (``kind = "point"``, mmdetection ``MlvlPointGenerator``):
    the degenerate box at ``float32((j + offset) * step)``.
    """
    k = np.asarray(k, dtype=np.int64)
    i = np.asarray(i, dtype=np.int64)
    j = np.asarray(j, dtype=np.int64)
    if preset.kind == "ssd":
        step = preset.strides[level]
        ph = np.asarray(padded_h, dtype=np.float64)
        pw = np.asarray(padded_w, dtype=np.float64)
        x_f = (pw / step).astype(F32)
        y_f = (ph / step).astype(F32)
        cx = (j.astype(np.float64) + 0.5).astype(F32) / x_f
        cy = (i.astype(np.float64) + 0.5).astype(F32) / y_f
        wh = ssd_wh_pairs(preset, level)[k]
        hw = F32(0.5) * wh
        W, H = pw.astype(F32), ph.astype(F32)
        return np.stack(
            ((cx - hw[:, 0]) * W, (cy - hw[:, 1]) * H, (cx + hw[:, 0]) * W, (cy + hw[:, 1]) * H), axis=1
        ).astype(F32)
    sy, sx = _steps(preset, level, padded_h, padded_w)
    if np.ndim(padded_h) == 0 and np.ndim(padded_w) == 0:
        sy, sx = sy[0], sx[0]
    if preset.kind == "point":
        o = preset.center_offset
        x = ((j + o).astype(F32) * np.asarray(sx, F32)).astype(F32)
        y = ((i + o).astype(F32) * np.asarray(sy, F32)).astype(F32)
        return np.stack((x, y, x, y), axis=1).astype(F32)
    base = base_anchors(preset, level)[k]
    o = preset.center_offset if preset.anchor_rule == "detectron2" else 0.0
    shx = ((j + o) * sx).astype(F32)
    shy = ((i + o) * sy).astype(F32)
    return np.stack((shx + base[:, 0], shy + base[:, 1], shx + base[:, 2], shy + base[:, 3]), axis=1).astype(F32)


def grid_anchors_numpy(preset: AnchorPreset, padded_h: int, padded_w: int) -> tuple[np.ndarray, np.ndarray]:
    """All anchors of a padded image as numpy: float32 ``(A, 4)`` and the level index int64 ``(A,)``."""
    boxes, levels = [], []
    for lvl, lay in enumerate(level_layout(preset, padded_h, padded_w)):
        ii, jj, kk = np.meshgrid(
            np.arange(lay.grid_h), np.arange(lay.grid_w), np.arange(lay.per_location), indexing="ij"
        )
        boxes.append(anchor_coords(preset, lvl, kk.reshape(-1), ii.reshape(-1), jj.reshape(-1), padded_h, padded_w))
        levels.append(np.full(lay.count, lvl, dtype=np.int64))
    if not boxes:
        return np.zeros((0, 4), F32), np.zeros(0, np.int64)
    return np.concatenate(boxes).astype(F32), np.concatenate(levels)


def grid_anchors(preset: AnchorPreset, padded_h: int, padded_w: int, device="cpu", dtype=None):
    """All anchors of a padded image as torch tensors: ``(A, 4)`` boxes and ``(A,)`` level index.

    Order as torchvision: level, row, column, base anchor. Computed in float32 (then cast to
    ``dtype`` if another is asked for).
    """
    import torch

    a, lv = grid_anchors_numpy(preset, padded_h, padded_w)
    t = torch.from_numpy(a).to(device=device)
    if dtype is not None:
        t = t.to(dtype)
    return t, torch.from_numpy(lv).to(device=device)
