"""Anchor generation for a preset and an image size, bit-for-bit like torchvision.

Resize (torchvision ``GeneralizedRCNNTransform``, eager mode): ``s = min(min_size / min(H, W),
max_size / max(H, W))`` in double precision, resized size ``floor(H s) x floor(W s)``; boxes are
scaled per axis by ``float32(resized) / float32(original)``; the image is padded up to a multiple
of ``size_divisible``. Each image is treated as a batch of one (no padding to a larger neighbour).

Grid anchors (torchvision ``AnchorGenerator``): per level, base anchors
``round([-w, -h, w, h] / 2)`` with ``h = size * sqrt(r)``, ``w = size / sqrt(r)`` in float32,
ratio-major (for each ratio, every size); anchors at grid position (i, j) are
``base + (j * stride, i * stride, j * stride, i * stride)``; grid size ``ceil(padded / stride)``;
order: level, then row i, column j, then base anchor. SSD default boxes follow torchvision's
``DefaultBoxGenerator`` (centres ``(j + 0.5) / (W / step)``, width/height pairs
``[s_k, s_k], [s'_k, s'_k], [s_k sqrt(a), s_k / sqrt(a)], [s_k / sqrt(a), s_k sqrt(a)]``,
clipped to [0, 1], then converted to pixels of the resized image).

All arithmetic is float32 like torchvision, so anchors match to the bit; the same coordinate
function serves the dense generator and the culled engine (:func:`anchor_coords`).
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


def resized_sizes(heights: np.ndarray, widths: np.ndarray, preset: AnchorPreset) -> tuple[np.ndarray, np.ndarray]:
    """Sizes after the resize of torchvision's ``GeneralizedRCNNTransform``, vectorised (int64 outputs).

    Bit-exact with torchvision: its scale is ``torch.min(min_size / lo, max_size / hi)`` with ``lo``
    and ``hi`` float32 tensors, and torch evaluates ``scalar / tensor`` as
    ``tensor.reciprocal() * scalar``; so ``s = min(float32(1/lo) * min_size, float32(1/hi) * max_size)``
    in float32. ``interpolate(..., recompute_scale_factor=True)`` then floors ``H * s`` and ``W * s``
    in double precision. A float64 scale gives a different size (one pixel) for many images, and
    the boxes are scaled by the resized size, so only this arithmetic matches torchvision's labels.
    """
    h = np.asarray(heights, dtype=np.float64).astype(np.int64)
    w = np.asarray(widths, dtype=np.float64).astype(np.int64)
    r = preset.resize
    if r.fixed is not None:
        return np.full(h.shape, int(r.fixed[0]), np.int64), np.full(w.shape, int(r.fixed[1]), np.int64)
    lo, hi = np.minimum(h, w).astype(F32), np.maximum(h, w).astype(F32)
    s = None
    with np.errstate(divide="ignore"):
        if r.min_size is not None:
            s = (F32(1) / lo) * F32(r.min_size)
        if r.max_size is not None:
            s2 = (F32(1) / hi) * F32(r.max_size)
            s = s2 if s is None else np.minimum(s, s2)
    if s is None:
        return h, w
    s = s.astype(np.float64)
    return np.floor(h * s).astype(np.int64), np.floor(w * s).astype(np.int64)


def padded_sizes(heights: np.ndarray, widths: np.ndarray, preset: AnchorPreset) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`padded_size` (int64 outputs)."""
    h, w = resized_sizes(heights, widths, preset)
    d = int(preset.resize.size_divisible)
    return -(-h // d) * d, -(-w // d) * d


def scale_boxes(boxes_xyxy: np.ndarray, heights, widths, preset: AnchorPreset) -> np.ndarray:
    """Scale original-pixel boxes into the resized image, in float32 like torchvision's ``resize_boxes``.

    ``boxes_xyxy`` is float64 ``(N, 4)``; ``heights``/``widths`` are the boxes' image sizes (N,).
    Coordinates are first rebuilt as torchvision's COCO reference does (``x2 = float32(x) +
    float32(w)``), then multiplied by ``float32(new) / float32(old)`` per axis.
    """
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    h = np.asarray(heights, dtype=np.float64).reshape(-1)
    w = np.asarray(widths, dtype=np.float64).reshape(-1)
    nh, nw = resized_sizes(h, w, preset)
    rh = nh.astype(F32) / h.astype(np.int64).astype(F32)
    rw = nw.astype(F32) / w.astype(np.int64).astype(F32)
    x1 = b[:, 0].astype(F32)
    y1 = b[:, 1].astype(F32)
    x2 = x1 + (b[:, 2] - b[:, 0]).astype(F32)
    y2 = y1 + (b[:, 3] - b[:, 1]).astype(F32)
    return np.stack((x1 * rw, y1 * rh, x2 * rw, y2 * rh), axis=1).astype(F32)


def base_anchors(preset: AnchorPreset, level: int) -> np.ndarray:
    """Base anchors of a grid level, float32 ``(K, 4)``, ratio-major and rounded (torchvision ``AnchorGenerator``)."""
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
    """One pyramid level laid on a padded image."""

    name: str
    stride: int
    grid_h: int
    grid_w: int
    per_location: int
    offset: int  # index of the level's first anchor in the concatenated anchor list

    @property
    def count(self) -> int:
        """Anchors on this level."""
        return self.grid_h * self.grid_w * self.per_location


def level_layout(preset: AnchorPreset, padded_h: int, padded_w: int) -> list[LevelLayout]:
    """Grid sizes (``ceil(padded / stride)``), anchors per location and offsets of every level."""
    out, offset = [], 0
    for lvl, stride in enumerate(preset.strides):
        gh, gw = -(-int(padded_h) // stride), -(-int(padded_w) // stride)
        k = preset.anchors_per_location(lvl)
        out.append(LevelLayout(preset.level_names[lvl], stride, gh, gw, k, offset))
        offset += gh * gw * k
    return out


def num_anchors(preset: AnchorPreset, padded_h, padded_w) -> np.ndarray:
    """Anchors per image for arrays of padded sizes (int64), by arithmetic only."""
    ph = np.asarray(padded_h, dtype=np.int64)
    pw = np.asarray(padded_w, dtype=np.int64)
    total = np.zeros(np.broadcast(ph, pw).shape, dtype=np.int64)
    for lvl, stride in enumerate(preset.strides):
        total += (-(-ph // stride)) * (-(-pw // stride)) * preset.anchors_per_location(lvl)
    return total


def level_shape_params(preset: AnchorPreset, level: int, padded_h: int, padded_w: int):
    """Per base shape of a level: ``(ox1, oy1, wa, ha, step_x, step_y)`` as float64 arrays.

    Anchor ``(i, j, k)`` spans approximately ``x1 = j * step_x + ox1[k]``, width ``wa[k]`` (exactly
    for grid presets, to float32 rounding for SSD). The culled engine uses these to bound which
    grid positions can reach an IoU; exact coordinates always come from :func:`anchor_coords`.
    """
    if preset.kind == "ssd":
        wh = ssd_wh_pairs(preset, level).astype(np.float64)
        step_x = padded_w / (padded_w / preset.strides[level])
        step_y = padded_h / (padded_h / preset.strides[level])
        wa, ha = wh[:, 0] * padded_w, wh[:, 1] * padded_h
        return 0.5 * step_x - 0.5 * wa, 0.5 * step_y - 0.5 * ha, wa, ha, float(step_x), float(step_y)
    base = base_anchors(preset, level).astype(np.float64)
    s = float(preset.strides[level])
    return base[:, 0], base[:, 1], base[:, 2] - base[:, 0], base[:, 3] - base[:, 1], s, s


def anchor_coords(preset: AnchorPreset, level: int, k, i, j, padded_h, padded_w) -> np.ndarray:
    """Exact float32 coordinates ``(N, 4)`` of anchors (level, base shape ``k``, row ``i``, column ``j``).

    ``k``, ``i``, ``j`` are integer arrays; ``padded_h``/``padded_w`` scalars or arrays (SSD only
    depends on them). Identical arithmetic to :func:`grid_anchors`.
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
        return np.stack(((cx - hw[:, 0]) * W, (cy - hw[:, 1]) * H, (cx + hw[:, 0]) * W, (cy + hw[:, 1]) * H),
                        axis=1).astype(F32)
    base = base_anchors(preset, level)[k]
    s = preset.strides[level]
    sx = (j * s).astype(F32)
    sy = (i * s).astype(F32)
    return np.stack((sx + base[:, 0], sy + base[:, 1], sx + base[:, 2], sy + base[:, 3]), axis=1)


def grid_anchors_numpy(preset: AnchorPreset, padded_h: int, padded_w: int) -> tuple[np.ndarray, np.ndarray]:
    """All anchors of a padded image as numpy: float32 ``(A, 4)`` and the level index int64 ``(A,)``."""
    boxes, levels = [], []
    for lvl, lay in enumerate(level_layout(preset, padded_h, padded_w)):
        ii, jj, kk = np.meshgrid(np.arange(lay.grid_h), np.arange(lay.grid_w), np.arange(lay.per_location), indexing="ij")
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
