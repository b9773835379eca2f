"""Anchor statistics of a dataset as a detector sees it (Oksuz, Cam, Kalkan, Akbas, "Imbalance
Problems in Object Detection: A Review", IEEE TPAMI 2021, §4.1, Figs. 4, 12a, 14).

:func:`anchor_statistics` lays a preset's anchors (default: torchvision ``retinanet_resnet50_fpn``)
on every image, labels them with a detector's matcher and reports:

* anchors per image; foreground / background / ignored totals and per-image means (Fig. 4a);
* positives per class, total and per image (Fig. 4b), and positives per instance by class;
* the pos:neg ratio of anchors and the *task* ratio for C sigmoid classifiers: each positive
  gives 1 positive and C - 1 negative tasks, each negative C negative tasks (Oksuz, Cam, Akbas,
  Kalkan, "Rank & Sort Loss for Object Detection and Instance Segmentation", ICCV 2021,
  supplementary §S3.5, Table S7). Ratios are stored as positives / negatives (1 : 1/r);
* per pyramid level: anchors, positives, boxes whose best anchor lies on the level (review §5.4.1);
* IoU histogram of positives with their matched box (Fig. 12a, 0.05 bins over [0, 1]; low-quality
  positives below ``pos_iou`` visible) and of negatives' best IoU over [0, neg_iou) with exact
  zeros counted apart (computed on a random sample of images on a CPU, stated in the report);
* coverage, by class and size group (:mod:`imbalance_cli.vocabulary`: the box's w·h in original
  pixels, or the file's ``area`` with ``size_by="area_field"``): boxes without any positive anchor
  (``boxes_without_positive``, low-quality matches counted), boxes with no anchor at or above
  ``pos_iou`` (``boxes_below_positive_iou``: trained only through low-quality matches, if at all) and
  boxes whose best IoU is below ``neg_iou``;
* relative spatial distribution of positives (Fig. 14): ``((x1a - x1g) / wg, (y1a - y1g) / hg)``
  of each positive anchor in its matched box's frame, a 2-D histogram.

Only valid boxes take part (``Dataset.valid_mask``); an image without valid boxes has all its
anchors background. The pass runs through :mod:`imbalance_cli.anchors.run`: images in chunks,
chunks on worker processes, each chunk reduced to fixed-size counters and histograms by
:func:`chunk_statistics` and folded into :class:`AnchorAccumulator`; peak memory is O(boxes) plus
O(workers x chunk). Options come resolved in an :class:`~imbalance_cli.specs.AnchorSpec`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from imbalance_cli import dist
from imbalance_cli.anchors import phases
from imbalance_cli.anchors.culled import ChunkStats, culled_chunk_statistics
from imbalance_cli.anchors.dense import dense_match_dataset
from imbalance_cli.anchors.generator import F32, box_keep, level_layout, num_anchors, scale_boxes
from imbalance_cli.anchors.layouts import ImageLayouts
from imbalance_cli.anchors.rules import IDX, MatchOutput
from imbalance_cli.anchors.run import Chunk, chunk_bounds, make_chunks, match_chunk, run_chunks
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.specs import (
    DEFAULT_NEGATIVE_IOU_SAMPLE,
    DEFAULT_SPATIAL_BINS,
    AnchorSpec,
    resolve_device,
    resolve_semantics,
)
from imbalance_cli.stats.geometry import SIZE_GROUPS, check_size_by, size_group_codes
from imbalance_cli.stats.geometry import iou_counts as _hist
from imbalance_cli.stats.geometry import iou_edges as _edges

__all__ = [
    "anchor_statistics",
    "label_anchors",
    "AnchorLabels",
    "AnchorAccumulator",
    "chunk_statistics",
    "spatial_histogram",
    "DEFAULT_NEGATIVE_IOU_SAMPLE",
    "SPATIAL_BINS",
    "resolve_device",
    "resolve_semantics",
]

SPATIAL_BINS = DEFAULT_SPATIAL_BINS
SPATIAL_RANGE = (-1.0, 1.0)
#: boxes handled at once by the whole-dataset set-up (validity, the framework's box filter, scaling)
SETUP_BLOCK = 1 << 20


def _size_group(dataset: Dataset, order: np.ndarray, size_by: str = "box") -> np.ndarray:
    """Size group (0 small, 1 medium, 2 large) of the boxes ``order``, int8 (the one definition:
    :func:`imbalance_cli.stats.geometry.size_group_codes`)."""
    return size_group_codes(dataset, order, size_by, block=SETUP_BLOCK)


def _blocked_hist(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """:func:`_hist` of ``values`` taken block by block (float64 temporaries O(block))."""
    counts = np.zeros(len(edges) - 1, np.int64)
    for a in range(0, len(values), SETUP_BLOCK):
        counts += _hist(values[a : a + SETUP_BLOCK].astype(np.float64), edges)
    return counts


def _spec(anchors: Any, spec: AnchorSpec | None, options: dict) -> AnchorSpec:
    """The one place API keyword arguments become an :class:`AnchorSpec`."""
    if spec is not None:
        return spec
    if isinstance(anchors, AnchorSpec):
        return anchors
    return AnchorSpec.build(anchors, **{k: v for k, v in options.items() if v is not None})


# ----------------------------------------------------------------------------------------------
# inputs shared by every pass
# ----------------------------------------------------------------------------------------------


class ScaledBoxes:
    """The valid boxes (in ``order``) scaled into the resized image, computed per slice, never all at once.

    ``scaled[b0:b1]`` is a float32 ``(b1 - b0, 4)`` array equal to the same rows of
    :func:`~imbalance_cli.anchors.generator.scale_boxes` over every box (the arithmetic is per
    box), so a chunk's boxes cost O(chunk) memory; :meth:`materialise` builds them all (used where
    every box is needed at once, e.g. :func:`label_anchors`).
    """

    def __init__(self, dataset: Dataset, order: np.ndarray, box_image: np.ndarray, preset):
        self.boxes, self.heights, self.widths = dataset.boxes, dataset.heights, dataset.widths
        self.integer = dataset.integer_boxes
        self.order, self.box_image, self.preset = order, box_image, preset

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice):
            raise TypeError("ScaledBoxes takes a slice of rows")
        bi = self.box_image[rows]
        idx = self.order[rows]
        ints = None if self.integer is None else self.integer[idx]
        return scale_boxes(self.boxes[idx], self.heights[bi], self.widths[bi], self.preset, ints)

    def materialise(self) -> np.ndarray:
        """Every scaled box, float32 ``(N, 4)``, filled block by block."""
        out = np.empty((len(self), 4), F32)
        for a in range(0, len(self), SETUP_BLOCK):
            out[a : a + SETUP_BLOCK] = self[a : a + SETUP_BLOCK]
        return out


@dataclass
class _Inputs:
    order: np.ndarray  # valid box indices grouped by image
    box_image: np.ndarray  # their image rows (sorted)
    box_start: np.ndarray  # (n_img + 1,) first box of each image in ``order``
    padded_h: np.ndarray
    padded_w: np.ndarray
    scaled: ScaledBoxes  # boxes in the resized image, per slice


def _inputs(dataset: Dataset, spec: AnchorSpec) -> _Inputs:
    """Valid boxes grouped by image, padded sizes, and the scaled boxes (lazily): O(boxes) integers only."""
    if not dataset.has_image_sizes:
        raise InputError(
            "anchor statistics need image sizes (pass an image sizes file or --anchors none)", path=dataset.path
        )
    H, W = dataset.heights, dataset.widths
    ph, pw = spec.check_images(H, W, dataset.image_ids, path=dataset.path)
    valid = dataset.valid_mask()
    if spec.preset.box_rule != "torchvision":  # torchvision keeps every valid box; others filter, block by block
        for a in range(0, len(valid), SETUP_BLOCK):
            v = a + np.flatnonzero(valid[a : a + SETUP_BLOCK])
            bi = dataset.box_image[v]
            ints = None if dataset.integer_boxes is None else dataset.integer_boxes[v]
            valid[v] = box_keep(spec.preset, dataset.boxes[v], H[bi], W[bi], dataset.area[v], ints)
    order, start = dataset.image_offsets(valid)
    del valid
    bimg = np.repeat(np.arange(dataset.num_images, dtype=np.int64), np.diff(start))  # = box_image[order], sorted
    return _Inputs(order, bimg, start, ph, pw, ScaledBoxes(dataset, order, bimg, spec.preset))


# ----------------------------------------------------------------------------------------------
# labels (one pass, every positive kept): label_anchors
# ----------------------------------------------------------------------------------------------


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


def _label_task(spec: AnchorSpec, chunk: Chunk) -> MatchOutput:
    return match_chunk(spec, chunk)


class _LabelFold:
    """The positives of every chunk of :func:`label_anchors`, kept, and the per-image / per-box arrays filled in."""

    def __init__(self, n_img: int, n_box: int) -> None:
        self.parts: list[tuple[int, int, MatchOutput]] = []
        self.ignored = np.zeros(n_img, np.int64)
        self.box_max = np.zeros(n_box, F32)
        self.box_best = np.zeros(n_box, np.int64)
        self.box_best_level = np.zeros(n_box, np.int64)
        self.box_ignored = np.zeros(n_box, np.int64)
        self.fallback = 0

    def fold(self, i0: int, b0: int, r: MatchOutput) -> None:
        self.parts.append((i0, b0, r))
        self.ignored[i0 : i0 + len(r.ignored_per_image)] = r.ignored_per_image
        nb = len(r.box_max_iou)
        self.box_max[b0 : b0 + nb], self.box_best[b0 : b0 + nb], self.box_best_level[b0 : b0 + nb] = (
            r.box_max_iou,
            r.box_best_anchor,
            r.box_best_level,
        )
        self.box_ignored[b0 : b0 + nb] = r.box_ignored
        self.fallback += int(r.fallback_images)

    def gather(self) -> None:
        """Under torchrun: every rank's parts, folded again in image order (as one process folds them)."""
        gathered = [p for ps in dist.all_gather_objects(self.parts) for p in ps]
        self.parts.clear()
        self.fallback = 0
        for p in sorted(gathered, key=lambda p: p[0]):
            self.fold(*p)

    def _cat(self, f, dt):
        parts = self.parts
        return np.concatenate([f(i0, b0, r) for i0, b0, r in parts]).astype(dt) if parts else np.zeros(0, dt)

    def result(self) -> MatchOutput:
        """Every positive, in image order, with dataset-wide image and box indices."""
        return MatchOutput(
            self._cat(lambda i0, b0, r: r.pos_image.astype(np.int64) + i0, IDX),
            self._cat(lambda i0, b0, r: r.pos_anchor, np.int64),
            self._cat(lambda i0, b0, r: r.pos_level, np.int8),
            self._cat(lambda i0, b0, r: r.pos_box.astype(np.int64) + b0, IDX),
            self._cat(lambda i0, b0, r: r.pos_iou, F32),
            self.ignored,
            self.box_max,
            self.box_best,
            self.box_best_level,
            self.fallback,
            box_ignored=self.box_ignored,
        )


def label_anchors(
    dataset: Dataset,
    anchors: Any = "retinanet",
    *,
    matcher: Any = None,
    device: Any = "auto",
    pos_iou: float | None = None,
    neg_iou: float | None = None,
    engine: Any = None,
    spec: AnchorSpec | None = None,
) -> AnchorLabels:
    """Label every anchor of every image with the preset's matcher, keeping every positive.

    Boxes are the valid ones, resized like torchvision's ``GeneralizedRCNNTransform``; the culled
    engine runs on a CPU, the dense engine on CUDA; both give identical labels. Pass a built
    ``spec`` (or an :class:`AnchorSpec` as ``anchors``) or the keyword options. Raises
    :class:`InputError` without image sizes or for bad options. Memory grows with the number of
    positives; :func:`anchor_statistics` keeps only fixed-size accumulators.
    """
    spec = _spec(
        anchors, spec, {"matcher": matcher, "device": device, "pos_iou": pos_iou, "neg_iou": neg_iou, "engine": engine}
    )
    inp = _inputs(dataset, spec)
    n_img = dataset.num_images
    folded = _LabelFold(n_img, len(inp.order))
    bounds = dist.shard(chunk_bounds(n_img, dist.chunk_images_for_ranks(n_img, spec.chunk_images)))
    run_chunks(
        spec,
        make_chunks(bounds, inp.box_start, inp.scaled, inp.box_image, inp.padded_h, inp.padded_w),
        _label_task,
        folded.fold,
        num_chunks=len(bounds),
        num_images=n_img,
        description="anchors",
    )
    if dist.active():  # under torchrun: every rank's positives, folded in image order (= one process)
        folded.gather()
    res = folded.result()
    return AnchorLabels(
        spec.preset,
        spec.semantics,
        spec.device,
        spec.engine,
        inp.order,
        inp.box_image,
        inp.padded_h,
        inp.padded_w,
        num_anchors(spec.preset, inp.padded_h, inp.padded_w),
        inp.scaled.materialise(),
        res,
    )


# ----------------------------------------------------------------------------------------------
# statistics: per-chunk reduction and fixed-size accumulators
# ----------------------------------------------------------------------------------------------


def spatial_histogram(
    preset, res: MatchOutput, sb: np.ndarray, ph: np.ndarray, pw: np.ndarray, bins: int
) -> tuple[np.ndarray, int]:
    """2-D histogram (rows = y) of positives' top-left corners in their box's normalised frame (Fig. 14).

    Bins are ``bins`` equal steps over :data:`SPATIAL_RANGE` per axis; corners outside are counted
    apart. Returns ``(counts (bins, bins), outside)``. Anchor coordinates come from the generator (the
    engine's ``pos_x1`` / ``pos_y1`` where it gives them).
    """
    lo, hi = SPATIAL_RANGE
    P = len(res.pos_box)
    if not P:
        return np.zeros((bins, bins), np.int64), 0
    if res.pos_x1 is not None and len(res.pos_x1) == P:
        ax1, ay1 = res.pos_x1.astype(np.float64), res.pos_y1.astype(np.float64)
    else:
        lay = ImageLayouts(preset, ph, pw)
        a = lay.coords(preset, res.pos_image.astype(np.int64), res.pos_anchor, res.pos_level.astype(np.int64))
        ax1, ay1 = a[:, 0].astype(np.float64), a[:, 1].astype(np.float64)
    g = sb[res.pos_box].astype(np.float64)
    rx = (ax1 - g[:, 0]) / (g[:, 2] - g[:, 0])
    ry = (ay1 - g[:, 1]) / (g[:, 3] - g[:, 1])
    inside = (rx >= lo) & (rx <= hi) & (ry >= lo) & (ry <= hi)
    scale = bins / (hi - lo)
    bx = np.minimum(((rx[inside] - lo) * scale).astype(np.int64), bins - 1)
    by = np.minimum(((ry[inside] - lo) * scale).astype(np.int64), bins - 1)
    counts = np.bincount(by * bins + bx, minlength=bins * bins).reshape(bins, bins).astype(np.int64)
    return counts, int(P - inside.sum())


def _positive_hist(iou: np.ndarray) -> np.ndarray:
    """:func:`_hist` of positives' IoUs over 0.05 bins of [0, 1] (the values are float32 in [0, 1])."""
    prev = phases.switch("histograms")
    out = _hist(iou.astype(np.float64), _edges(1.0))
    phases.switch(prev)
    return out


def _neg_edges(spec: AnchorSpec) -> np.ndarray:
    neg_f = float(spec.preset.neg_iou if spec.semantics != "ssd" else spec.preset.pos_iou)
    return _edges(neg_f) if neg_f > 0 else np.array([0.0, 0.0])


def chunk_statistics(spec: AnchorSpec, chunk: Chunk) -> dict:
    """Label one chunk and reduce it to counters: the task every worker runs for :func:`anchor_statistics`.

    ``chunk.extra`` holds ``box_class`` (per box), ``in_sample`` (per image, bool) and ``num_classes``
    is read from ``chunk.extra["num_classes"]`` (a length-1 array). Returns per-image foreground and
    ignored counts; per box its best IoU (``box_max_iou``), the level of its first best anchor
    (``box_best_level``), its positive anchors (``box_positives``) and the ignored anchors whose best box
    it is (``box_ignored``, first box on ties); and fixed-size counters and histograms. The culled engine
    counts in its compiled pass without keeping positives (:func:`~imbalance_cli.anchors.culled.
    culled_chunk_statistics`); other engines and assigners reduce their :class:`MatchOutput`.
    """
    if spec.engine == "culled" and spec.preset.assigner == "max_iou":
        return _culled_statistics(spec, chunk)
    prev = phases.switch("labelling")
    res = match_chunk(spec, chunk)
    out = _match_statistics(spec, chunk, res, np.flatnonzero(chunk.extra["in_sample"]))
    phases.switch(prev)
    return out


def _culled_statistics(spec: AnchorSpec, chunk: Chunk) -> dict:
    """:func:`chunk_statistics` by the compiled pass; images it hands back (a box reaching no anchor) are
    labelled by the dense engine on the CPU and their counts merged in."""
    preset = spec.preset
    prev = phases.switch("labelling")
    C = int(chunk.extra["num_classes"][0]) if "num_classes" in chunk.extra else 0
    st = ChunkStats(
        chunk.extra["box_class"],
        C,
        preset.num_levels,
        chunk.extra["in_sample"],
        _edges(1.0),
        preset.pos_iou,
        _neg_edges(spec),
        spec.spatial_bins,
        SPATIAL_RANGE,
    )
    out, fallback = culled_chunk_statistics(
        preset, spec.semantics, chunk.boxes, chunk.box_image, chunk.padded_h, chunk.padded_w, st
    )
    if len(fallback):
        res, _, _ = dense_match_dataset(
            preset,
            chunk.boxes,
            chunk.box_image,
            chunk.padded_h,
            chunk.padded_w,
            semantics=spec.semantics,
            device="cpu",
            images=fallback,
            progress_description=None,
        )
        res.fallback_images = len(fallback)
        fb = _match_statistics(spec, chunk, res, np.intersect1d(fallback, np.flatnonzero(chunk.extra["in_sample"])))
        start = np.searchsorted(chunk.box_image, np.arange(chunk.num_images + 1))
        boxes_fb = np.concatenate([np.arange(start[i], start[i + 1]) for i in fallback])
        for k, v in out.items():
            if k in ("foreground", "ignored"):
                v[fallback] = fb[k][fallback]
            elif k.startswith("box_"):
                v[boxes_fb] = fb[k][boxes_fb]
            elif k != "fallback":
                out[k] = v + fb[k]
    phases.switch(prev)
    return out


def _match_statistics(spec: AnchorSpec, chunk: Chunk, res: MatchOutput, sample: np.ndarray) -> dict:
    """:func:`chunk_statistics` of a :class:`MatchOutput` (the negative-IoU histogram over the images ``sample``
    by the dense engine)."""
    preset = spec.preset
    prev = phases.switch("accumulators")
    n = chunk.num_images
    C = int(chunk.extra["num_classes"][0]) if "num_classes" in chunk.extra else 0
    L = preset.num_levels
    pos_t = F32(preset.pos_iou)
    nb = len(res.box_max_iou)
    out = {
        "foreground": np.bincount(res.pos_image, minlength=n).astype(np.int64),
        "ignored": np.asarray(res.ignored_per_image, np.int64),
        "box_max_iou": res.box_max_iou,
        "box_best_level": np.asarray(res.box_best_level, np.int64),
        "box_positives": np.bincount(res.pos_box, minlength=nb).astype(np.int64),
        "box_ignored": np.asarray(res.box_ignored, np.int64),
        "per_class": np.bincount(chunk.extra["box_class"][res.pos_box], minlength=C).astype(np.int64),
        "per_level": np.bincount(res.pos_level, minlength=L).astype(np.int64),
        "positive_iou": _positive_hist(res.pos_iou),
        "low_quality": int((res.pos_iou < pos_t).sum()),
        "fallback": int(res.fallback_images),
    }
    phases.switch("histograms")
    out["spatial"], out["outside"] = spatial_histogram(
        preset, res, chunk.boxes, chunk.padded_h, chunk.padded_w, spec.spatial_bins
    )
    edges = _neg_edges(spec)
    if preset.assigner != "max_iou":  # ATSS / FCOS / YOLOv5: negatives have no IoU band to histogram
        sample = sample[:0]
    neg_t = F32(edges[-1])
    if neg_t > 0 and len(sample):
        _, c, z = dense_match_dataset(
            preset,
            chunk.boxes,
            chunk.box_image,
            chunk.padded_h,
            chunk.padded_w,
            semantics=spec.semantics,
            device=spec.device,
            images=sample,
            negative_edges=edges,
            progress_description=None,
        )
        out["negative"], out["zero"] = np.asarray(c, np.int64), int(z)
    else:
        out["negative"], out["zero"] = np.zeros(len(edges) - 1, np.int64), 0
    phases.switch(prev)
    return out


class AnchorAccumulator:
    """Fixed-size accumulators of the anchor pass (plus per-image and per-box arrays, O(images + boxes)).

    :meth:`fold` adds one chunk's :func:`chunk_statistics` result at its image and box offsets.
    """

    def __init__(
        self, num_images: int, num_boxes: int, num_classes: int, num_levels: int, spatial_bins: int, negative_bins: int
    ):
        self.foreground = np.zeros(num_images, np.int64)
        self.ignored = np.zeros(num_images, np.int64)
        self.box_max_iou = np.zeros(num_boxes, F32)
        self.box_best_level = np.zeros(num_boxes, np.int32)
        self.box_positives = np.zeros(num_boxes, np.int32)
        self.box_ignored = np.zeros(num_boxes, np.int32)
        self.per_class = np.zeros(num_classes, np.int64)
        self.per_level = np.zeros(num_levels, np.int64)
        self.positive_iou = np.zeros(len(_edges(1.0)) - 1, np.int64)
        self.low_quality = 0
        self.fallback = 0
        self.spatial = np.zeros((spatial_bins, spatial_bins), np.int64)
        self.outside = 0
        self.negative = np.zeros(negative_bins, np.int64)
        self.zero = 0

    def fold(self, image_start: int, box_start: int, part: dict) -> None:
        """Add one chunk's partial result."""
        n, nb = len(part["foreground"]), len(part["box_max_iou"])
        self.foreground[image_start : image_start + n] = part["foreground"]
        self.ignored[image_start : image_start + n] = part["ignored"]
        self.box_max_iou[box_start : box_start + nb] = part["box_max_iou"]
        self.box_best_level[box_start : box_start + nb] = part["box_best_level"]
        self.box_positives[box_start : box_start + nb] = part["box_positives"]
        self.box_ignored[box_start : box_start + nb] = part["box_ignored"]
        self.per_class += part["per_class"]
        self.per_level += part["per_level"]
        self.positive_iou += part["positive_iou"]
        self.low_quality += part["low_quality"]
        self.fallback += part["fallback"]
        self.spatial += part["spatial"]
        self.outside += part["outside"]
        self.negative += part["negative"]
        self.zero += part["zero"]

    def all_reduce(self) -> None:
        """Sum the accumulators of every torchrun rank (:mod:`imbalance_cli.dist`; a no-op in one process).

        Each per-image and per-box slice was filled by exactly one rank and is zero elsewhere, so
        the sums are exact, also for the float32 best IoUs.
        """
        if not dist.active():
            return
        dist.sum_arrays(
            self.foreground,
            self.ignored,
            self.box_max_iou,
            self.box_best_level,
            self.box_positives,
            self.box_ignored,
            self.per_class,
            self.per_level,
            self.positive_iou,
            self.spatial,
            self.negative,
        )
        self.low_quality, self.fallback, self.outside, self.zero = dist.sum_scalars(
            self.low_quality, self.fallback, self.outside, self.zero
        )


# long: 15 parameters and the docstring that explains them; the body is named steps and the report's key list
def anchor_statistics(
    dataset: Dataset,
    anchors: Any = "retinanet",
    *,
    matcher: Any = None,
    device: Any = "auto",
    pos_iou: float | None = None,
    neg_iou: float | None = None,
    negative_iou_sample: int | str | None = None,
    seed: int = 0,
    engine: Any = None,
    spatial_bins: int = SPATIAL_BINS,
    chunk_images: Any = "default",
    workers: int | None = None,
    spec: AnchorSpec | None = None,
    size_by: str = "box",
    box_arrays: dict | None = None,
) -> dict:
    """Anchor statistics of ``dataset`` (see module docstring); returns the report's ``anchors`` dict.

    Pass a built ``spec`` (:meth:`imbalance_cli.specs.AnchorSpec.build`, or an ``AnchorSpec`` as
    ``anchors``), or these options, validated into one:

    anchors: preset name (``retinanet``, ``rpn``, ``ssd300``), TOML path, or ``AnchorPreset``.
    matcher: ``torchvision`` (default), ``mmdet``, ``ssd`` or ``auto``/None (the preset's own);
        with an ``ssd`` preset, ``torchvision`` means torchvision's ``SSDMatcher``.
    device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    pos_iou, neg_iou: override the preset's thresholds.
    negative_iou_sample: images sampled (seeded) for the negative IoU histogram; ``"all"`` for
        every image; default ``all`` on CUDA and :data:`DEFAULT_NEGATIVE_IOU_SAMPLE` on a CPU.
    engine: ``culled`` or ``dense``; default culled on a CPU and dense on CUDA.
    spatial_bins: bins per axis of the Fig. 14 histogram.
    chunk_images: images per chunk (``None``/``"all"``: one chunk); workers: processes (default: cores).
    size_by: size groups of the coverage table, ``box`` (w·h) or ``area_field`` (COCO-eval groups).
    box_arrays: a dict this call fills with the pass's per-box arrays, valid boxes in image order (the
        per-box table, :mod:`imbalance_cli.stats.boxes`): ``order`` (dataset box rows), ``max_iou``,
        ``best_level``, ``positives``, ``ignored``, ``size_group``, ``scaled`` (boxes in the resized image,
        a :class:`ScaledBoxes`) and ``preset``.
    The result does not depend on ``chunk_images`` or ``workers``.
    """
    t0 = time.perf_counter()
    check_size_by(size_by)
    if spec is None and not isinstance(anchors, AnchorSpec):
        opts = {"matcher": matcher, "device": device, "pos_iou": pos_iou, "neg_iou": neg_iou, "engine": engine}
        opts.update(negative_iou_sample=negative_iou_sample, seed=seed, spatial_bins=spatial_bins, workers=workers)
        spec = _spec_from_options(anchors, opts, chunk_images)
    spec = _spec(anchors, spec, {})
    preset, semantics = spec.preset, spec.semantics
    inp = _inputs(dataset, spec)
    order = inp.order
    n_img, C = dataset.num_images, dataset.num_categories
    neg_f = float(preset.neg_iou if semantics != "ssd" else preset.pos_iou)
    neg_edges = _neg_edges(spec)
    in_sample, sample_n = _negative_sample(spec, n_img)
    cat_of_box = dataset.box_category[order].astype(np.int32)
    acc = _run_pass(dataset, spec, inp, cat_of_box, in_sample, len(neg_edges) - 1)
    prev_phase = phases.switch("accumulators")  # the report from the accumulators

    inst = np.bincount(cat_of_box, minlength=C).astype(np.int64)
    cat_ids = [str(int(c)) for c in dataset.category_ids]
    totals = _totals(acc, int(num_anchors(preset, inp.padded_h, inp.padded_w).sum()), n_img, cat_ids, inst)
    cov, sg = _coverage(dataset, spec, acc, order, cat_of_box, cat_ids, inst, size_by, np.float32(neg_f))
    if box_arrays is not None:
        box_arrays.update(_box_arrays(acc, inp, sg, preset))
    phases.switch(prev_phase)
    return {
        "preset": preset.name,
        "assigner": preset.assigner,
        "matcher": semantics,
        "device": spec.device,
        "engine": spec.engine,
        "thresholds": {
            "pos_iou": float(preset.pos_iou),
            "neg_iou": neg_f,
            "allow_low_quality": bool(preset.allow_low_quality),
        },
        "images": int(n_img),
        "boxes": int(len(order)),
        **totals,
        "levels": _levels(preset, inp.padded_h, inp.padded_w, acc),
        **_iou_histograms(acc, neg_edges, sample_n, n_img, spec.seed),
        **cov,
        "spatial": _spatial(acc, spec.spatial_bins),
        "images_without_boxes": int(np.sum(np.diff(inp.box_start) == 0)) if n_img else 0,
        "dense_fallback_images": int(acc.fallback),
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _spec_from_options(anchors: Any, opts: dict, chunk_images: Any) -> AnchorSpec:
    """An :class:`AnchorSpec` from :func:`anchor_statistics`' keyword options (None: the spec's default)."""
    if chunk_images != "default":
        opts["chunk_images"] = chunk_images
    return AnchorSpec.build(anchors, **{k: v for k, v in opts.items() if v is not None or k == "chunk_images"})


def _box_arrays(acc: "AnchorAccumulator", inp: Any, size_group: np.ndarray, preset: Any) -> dict:
    """The pass's per-box arrays for the per-box table (see :func:`anchor_statistics`' ``box_arrays``)."""
    return {
        "order": inp.order,
        "max_iou": acc.box_max_iou,
        "best_level": acc.box_best_level,
        "positives": acc.box_positives,
        "ignored": acc.box_ignored,
        "size_group": size_group,
        "scaled": inp.scaled,
        "preset": preset,
    }


def _totals(acc: "AnchorAccumulator", total: int, n_img: int, cat_ids: list, inst: np.ndarray) -> dict:
    """Anchors, foreground / background / ignored (totals and per image), per-class positives, the ratios."""
    C = len(cat_ids)
    fg = int(acc.foreground.sum())
    ign = int(acc.ignored.sum())
    bg = total - fg - ign
    n = max(n_img, 1)
    pos_per_class = acc.per_class
    pos_neg_ratio = fg / bg if bg > 0 else None
    neg_tasks = fg * (C - 1) + bg * C
    task_ratio = fg / neg_tasks if neg_tasks > 0 else None
    return {
        "anchors": total,
        "foreground": fg,
        "background": bg,
        "ignored": ign,
        "per_image": {"anchors": total / n, "foreground": fg / n, "background": bg / n, "ignored": ign / n},
        "per_class_positive": {cid: int(v) for cid, v in zip(cat_ids, pos_per_class)},
        "per_class_positive_per_image": {cid: int(v) / n for cid, v in zip(cat_ids, pos_per_class)},
        "positives_per_instance": {cid: int(p) / int(i) for cid, p, i in zip(cat_ids, pos_per_class, inst) if i},
        "instances_per_class": {cid: int(i) for cid, i in zip(cat_ids, inst)},
        "pos_neg_ratio": pos_neg_ratio,
        "task_pos_neg_ratio": task_ratio,
        "num_classes": int(C),
    }


def _iou_histograms(acc: "AnchorAccumulator", neg_edges: np.ndarray, sample_n: int, n_img: int, seed: int) -> dict:
    """The positives' IoU, the sampled negatives' best IoU and the boxes' best IoU histograms."""
    pos_edges = _edges(1.0)
    return {
        "positive_iou": {
            "edges": pos_edges.tolist(),
            "counts": acc.positive_iou.tolist(),
            "low_quality": int(acc.low_quality),
        },
        "negative_iou": {
            "edges": neg_edges.tolist(),
            "counts": [int(v) for v in acc.negative],
            "zero": int(acc.zero),
            "sample_images": int(sample_n),
            "exact": bool(sample_n == n_img),
            "seed": int(seed),
        },
        "box_max_iou": {"edges": pos_edges.tolist(), "counts": _blocked_hist(acc.box_max_iou, pos_edges).tolist()},
    }


def _negative_sample(spec: AnchorSpec, n_img: int) -> tuple[np.ndarray, int]:
    """The negative-IoU sample (images flagged) and its size: the same seeded draw whatever the chunking."""
    if spec.negative_iou_sample is None or spec.negative_iou_sample >= n_img:
        sample_n = n_img
        in_sample = np.ones(n_img, bool)
    else:
        k = int(spec.negative_iou_sample)
        pick = np.random.default_rng(spec.seed).choice(n_img, size=k, replace=False)
        in_sample = np.zeros(n_img, bool)
        in_sample[pick] = True
        sample_n = k
    if spec.preset.assigner != "max_iou":  # ATSS / FCOS: no negative IoU band, no sample
        in_sample[:] = False
        sample_n = 0
    return in_sample, sample_n


def _run_pass(dataset: Dataset, spec: AnchorSpec, inp, cat_of_box, in_sample, neg_bins: int) -> "AnchorAccumulator":
    """The anchor pass over this rank's chunks, folded into an accumulator summed over ranks."""
    n_img, C = dataset.num_images, dataset.num_categories
    acc = AnchorAccumulator(n_img, len(inp.order), C, spec.preset.num_levels, spec.spatial_bins, neg_bins)
    chunk = dist.chunk_images_for_ranks(n_img, _chunk_for_workers(n_img, spec))
    bounds = dist.shard(chunk_bounds(n_img, chunk))  # this rank's chunks
    chunks = make_chunks(
        bounds,
        inp.box_start,
        inp.scaled,
        inp.box_image,
        inp.padded_h,
        inp.padded_w,
        per_box={"box_class": cat_of_box},
        per_image={"in_sample": in_sample},
    )

    def with_classes(it):
        nc = np.array([C], np.int64)
        for ch in it:
            ch.extra["num_classes"] = nc
            yield ch

    run_chunks(
        spec,
        with_classes(chunks),
        chunk_statistics,
        acc.fold,
        num_chunks=len(bounds),
        num_images=n_img,
        description=f"anchors ({spec.engine})",
    )
    acc.all_reduce()  # under torchrun: every rank's chunks summed (a no-op in one process)
    return acc


def _levels(preset, ph: np.ndarray, pw: np.ndarray, acc: "AnchorAccumulator") -> list[dict]:
    """Per pyramid level: anchors (arithmetic over the distinct padded sizes), positives, best-level boxes."""
    L = preset.num_levels
    lev_anchors = np.zeros(L, np.int64)
    if len(ph):
        sizes, inv = np.unique(np.stack([ph, pw], 1), axis=0, return_inverse=True)
        size_count = np.bincount(inv.reshape(-1), minlength=len(sizes))
        for (h, w), cnt in zip(sizes, size_count):
            for lv, lay in enumerate(level_layout(preset, int(h), int(w))):
                lev_anchors[lv] += lay.count * int(cnt)
    lev_best = np.bincount(acc.box_best_level, minlength=L) if len(acc.box_best_level) else np.zeros(L, np.int64)
    return [
        {
            "name": preset.level_names[lv],
            "stride": int(preset.strides[lv]),
            "anchors": int(lev_anchors[lv]),
            "foreground": int(acc.per_level[lv]),
            "best_level_boxes": int(lev_best[lv]),
        }
        for lv in range(L)
    ]


def _coverage(dataset, spec, acc, order, cat_of_box, cat_ids, inst, size_by, neg_t) -> tuple[dict, np.ndarray]:
    """Boxes without a positive, ignored only, below the positive / negative IoU: by size group and by class.

    Vocabulary: ``without_positive`` counts low-quality matches as positives; ``below_positive_iou`` does not.
    Returns the report's ``boxes_*`` counts and ``coverage`` (no ``below_positive_iou`` for ATSS / FCOS: no fixed
    positive IoU), and each box's size group."""
    C = dataset.num_categories
    box_max = acc.box_max_iou
    no_pos = acc.box_positives == 0
    ign_only = no_pos & (acc.box_ignored > 0)  # no positive, but ignored anchors: in neither loss there
    iou_rule = spec.preset.assigner == "max_iou"
    below_pos = box_max < np.float32(spec.preset.pos_iou) if iou_rule else None
    below = box_max < neg_t
    sg = _size_group(dataset, order, size_by)

    def counts_of(m):
        row = {
            "boxes": int(m.sum()),
            "without_positive": int((no_pos & m).sum()),
            "ignored_only": int((ign_only & m).sum()),
        }
        if below_pos is not None:
            row["below_positive_iou"] = int((below_pos & m).sum())
        row["below_negative"] = int((below & m).sum())
        return row

    by_size = {key: counts_of(sg == i) for i, key in enumerate(SIZE_GROUPS)}
    cov_class = {}
    by_cat = {
        k: np.bincount(cat_of_box[m], minlength=C)
        for k, m in (
            ("without_positive", no_pos),
            ("ignored_only", ign_only),
            ("below_positive_iou", below_pos),
            ("below_negative", below),
        )
        if m is not None
    }
    for ci, cid in enumerate(cat_ids):
        if inst[ci]:
            cov_class[cid] = {"boxes": int(inst[ci]), **{k: int(v[ci]) for k, v in by_cat.items()}}
    return {
        "boxes_without_positive": int(no_pos.sum()),
        "boxes_ignored_only": int(ign_only.sum()),
        "boxes_below_positive_iou": None if below_pos is None else int(below_pos.sum()),
        "boxes_below_negative": int(below.sum()),
        "coverage": {"by_class": cov_class, "by_size": by_size, "size_groups_by": size_by},
    }, sg


def _spatial(acc: "AnchorAccumulator", bins: int) -> dict:
    """The relative spatial distribution of positives (the survey's Fig. 14)."""
    lo, hi = SPATIAL_RANGE
    return {
        "bins": bins,
        "range": [lo, hi],
        "edges": np.linspace(lo, hi, bins + 1).tolist(),
        "counts": acc.spatial.tolist(),
        "outside": int(acc.outside),
    }


#: Chunks per worker a small dataset is cut into at least: every worker gets work and the progress bar moves
#: (one 2,000-image chunk for 79 images ran on one core, and its bar sat at 0 until the end).
CHUNKS_PER_WORKER = 4


def _chunk_for_workers(n_img: int, spec: AnchorSpec) -> int | None:
    """Images per chunk: the spec's, made smaller for a dataset of fewer than ``CHUNKS_PER_WORKER x workers``
    chunks (the report does not depend on the chunking; bundled val: 2 workers, 8 chunks of 10 images,
    anchor pass 2.4 -> 1.4 s measured)."""
    chunk = spec.chunk_images
    workers = max(1, int(spec.workers or 1))
    if chunk is None or workers == 1 or n_img == 0:
        return chunk
    return min(int(chunk), max(1, -(-n_img // (CHUNKS_PER_WORKER * workers))))
