"""The YOLO search space: free ``(w, h)`` anchors per level of a yolov5 preset, in letterboxed pixels.

Each candidate is judged by YOLOv5's ``build_targets`` (:func:`imbalance_cli.anchors.yolov5.assign_yolov5`) on the
letterboxed sample, with BPR and anchors above threshold as AutoAnchor's ``metric()``. Starts: the preset's own
anchors, those anchors scaled, and k-means of the letterboxed box shapes with as many clusters as anchors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Callable, ClassVar

import numpy as np

from imbalance_cli.anchorfit.grid import SIZE_RANGE
from imbalance_cli.anchorfit.kmeans import KMEANS_MAX_BOXES, kmeans_iou
from imbalance_cli.anchorfit.scoring import bpr_metrics, label_metrics
from imbalance_cli.anchors.snippets import yolo_configs
from imbalance_cli.anchors.tomlwriter import yolov5_toml
from imbalance_cli.anchors.yolov5 import assign_yolov5, autoanchor_metric, letterbox_boxes, letterbox_geometry
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.specs import check_letterbox_images


@dataclass(frozen=True)
class YoloAnchorParams:
    """A point of the YOLO search space: free ``(w, h)`` anchors (letterboxed pixels), per level, sorted by area."""

    anchors: tuple[tuple[tuple[float, float], ...], ...]

    def key(self) -> tuple:
        """Hashable identity (the rounded numbers)."""
        return self.anchors

    def flat(self) -> np.ndarray:
        """``(K, 2)`` anchors in level order."""
        return np.array([a for lv in self.anchors for a in lv], np.float64).reshape(-1, 2)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"anchors": [[list(a) for a in lv] for lv in self.anchors]}


def round_yolo(wh, per_level: tuple[int, ...]) -> YoloAnchorParams:
    """Anchors ``(K, 2)`` -> clipped to ``SIZE_RANGE``, rounded to 0.01 px, sorted by area (ascending, stable, as
    AutoAnchor's ``kmean_anchors`` sorts) and split into levels of ``per_level`` anchors (small anchors on the
    finest level)."""
    a = np.round(np.clip(np.asarray(wh, np.float64).reshape(-1, 2), *SIZE_RANGE), 2)
    a = a[np.argsort(a[:, 0] * a[:, 1], kind="stable")]
    out, i = [], 0
    for n in per_level:
        out.append(tuple((float(w), float(h)) for w, h in a[i : i + n]))
        i += n
    return YoloAnchorParams(tuple(out))


def _yolo_pass(ds: Dataset, preset, lb_cache: dict):
    """One labelling pass of YOLOv5 ``build_targets`` (:func:`imbalance_cli.anchors.yolov5.assign_yolov5`) over
    ``ds`` on the letterboxed input; an object with ``preset``, ``order``, ``scaled_boxes``, ``result`` (what
    :func:`label_metrics` reads). The letterbox does not depend on the anchors and is computed once per dataset."""

    key = id(ds)
    if key not in lb_cache:
        order, _ = ds.image_offsets(ds.valid_mask())
        bimg = ds.box_image[order]
        H, W = ds.heights, ds.widths
        _r, ph, pw, _px, _py = letterbox_geometry(H, W, preset)
        lb = letterbox_boxes(ds.boxes[order], H[bimg], W[bimg], preset)
        lb_cache[key] = (ds, order, bimg, ph, pw, lb)
    _ds, order, bimg, ph, pw, lb = lb_cache[key]
    res = assign_yolov5(preset, lb, bimg, ph, pw)
    return SimpleNamespace(preset=preset, order=order, scaled_boxes=lb, result=res)


@dataclass(frozen=True)
class YoloSpace:
    """The search space of a yolov5 preset ``original`` with ``per_level`` anchors on each level: the starts, the
    log-space coordinates the evolution mutates, and how the fit is written (JSON, snippet, TOML)."""

    original: Any
    per_level: tuple[int, ...]
    #: The letterboxed boxes per dataset (they do not depend on the anchors).
    letterboxed: dict = field(default_factory=dict, compare=False)
    #: How the space is searched, as the report states it.
    method: ClassVar[str] = (
        "(1+1) evolution of free (w, h) anchors in log space from the best start (preset, scaled preset, 1-IoU "
        "k-means of the letterboxed box shapes)"
    )

    @classmethod
    def of(cls, original, dataset: Dataset, device: str = "cpu") -> "YoloSpace":
        """The space of ``original`` over ``dataset``, whose image sizes must be known and letterboxable (YOLOv5's
        assignment runs on the CPU: ``device`` is not used)."""
        if not dataset.has_image_sizes:
            raise InputError("fitting YOLOv5 anchors needs image sizes (the images themselves)", path=dataset.path)
        check_letterbox_images(original, dataset.heights, dataset.widths, dataset.image_ids, dataset.path)
        return cls(original, tuple(len(lv) for lv in original.anchors))

    def scorer(self, freq, size_by: str, objective: str) -> Callable:
        """``score_preset(preset, dataset) -> (metrics, labelled pass)``: BPR and anchors above threshold always."""

        def score_preset(p, ds):
            lp = _yolo_pass(ds, p, self.letterboxed)
            m = label_metrics(lp, ds, freq, size_by)
            wh = lp.scaled_boxes[:, 2:4] - lp.scaled_boxes[:, 0:2]
            m.update(bpr_metrics(wh, p.anchor_array(), p.anchor_t))
            m["aat"] = autoanchor_metric(wh, p.anchor_array(), p.anchor_t)["aat"]
            return m, lp

        return score_preset

    def build(self, params: YoloAnchorParams, name: str | None = None):
        """The preset of ``params``."""
        return replace(self.original, name=name or f"{self.original.name}-fitted", anchors=params.anchors)

    def projection(self) -> YoloAnchorParams:
        """The preset's own anchors in the space."""
        return round_yolo(self.original.anchor_array(), self.per_level)

    def kmeans(self, wh: np.ndarray, seed: int) -> YoloAnchorParams | None:
        """The k-means start of the box shapes ``wh`` (None with fewer boxes than anchors)."""
        wh = wh[(wh[:, 0] > 0) & (wh[:, 1] > 0)]
        K = int(sum(self.per_level))
        if len(wh) < K:
            return None
        kwh = (
            wh
            if len(wh) <= KMEANS_MAX_BOXES
            else wh[np.sort(np.random.default_rng(seed).choice(len(wh), KMEANS_MAX_BOXES, replace=False))]
        )
        return round_yolo(kmeans_iou(kwh, K, np.random.default_rng(seed)), self.per_level)

    def scaled(self, params: YoloAnchorParams, factor: float) -> YoloAnchorParams:
        """``params`` with every anchor times ``factor``."""
        return round_yolo(params.flat() * factor, self.per_level)

    def encode(self, params: YoloAnchorParams) -> np.ndarray:
        """The log-space vector the evolution mutates: every anchor's width and height."""
        return np.log(params.flat().ravel())

    def decode(self, e: np.ndarray) -> YoloAnchorParams:
        """The rounded point of ``exp(vector)`` (:meth:`encode`'s layout)."""
        return round_yolo(e, self.per_level)

    @staticmethod
    def preset_dict(p) -> dict:
        """The preset as the report's JSON states it."""
        return {
            "name": p.name,
            "kind": "yolov5",
            "anchors": [[list(a) for a in lv] for lv in p.anchors],
            "strides": list(p.strides),
            "level_names": list(p.level_names),
            "img_size": int(p.img_size),
            "anchor_t": float(p.anchor_t),
            "pos_iou": float(p.pos_iou),
            "neg_iou": float(p.neg_iou),
            "matcher": p.matcher,
            "assigner": p.assigner,
        }

    @staticmethod
    def configs(fitted, params: YoloAnchorParams, targets: tuple[str, ...] | None) -> dict:
        """The ultralytics model-yaml snippet of the fitted preset."""
        return yolo_configs(fitted, targets)

    @staticmethod
    def toml(fitted) -> str:
        """The fitted preset as a yolov5 preset TOML."""
        return yolov5_toml(fitted)
