"""The grid search space: the sizes and aspect ratios of a preset laying sizes x ratios on every level.

A fitted grid preset keeps the preset's levels, strides, resize, matcher and the number of sizes (S) and ratios (R)
per location, so a pretrained head keeps its shapes; sizes are ``base_l * scale_i`` (one base size per level,
``scale_0 = 1``, scales shared by all levels) and the R ratios (h / w) are shared by all levels. That is exactly
expressible by torchvision's ``AnchorGenerator`` (a size tuple per level, ratios per level), mmdetection's
``AnchorGenerator`` (``base_sizes`` per level x shared ``scales``, shared ``ratios``) and detectron2's
``DefaultAnchorGenerator`` (``SIZES`` per level, ``ASPECT_RATIOS``). Base sizes are rounded to 0.01 px and kept
non-decreasing with the stride, scales and ratios to 1e-4, sizes ``base_l * scale_i`` to 1e-4 px before scoring, so
the emitted numbers are the scored numbers.

Starts (:class:`GridSpace`): the preset's own sizes projected onto the space (least squares in log space), that
layout with every size scaled, and k-means of the resized box shapes with ``L*S*R`` clusters mapped onto the space
(sizes sorted into the L x S grid, ratios split into R groups).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, ClassVar

import numpy as np

from imbalance_cli.anchorfit.kmeans import KMEANS_MAX_BOXES, kmeans_iou
from imbalance_cli.anchorfit.scoring import BPR_PRESET_ATTRIBUTE, bpr_metrics, label_metrics
from imbalance_cli.anchors.snippets import framework_configs
from imbalance_cli.anchors.tomlwriter import preset_to_toml
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.errors import InputError
from imbalance_cli.stats.anchors import label_anchors

RATIO_RANGE = (0.05, 20.0)
SIZE_RANGE = (2.0, 4096.0)
SCALE_RANGE = (0.25, 8.0)


@dataclass(frozen=True)
class AnchorParams:
    """A point of the search space: per-level ``base`` sizes, shared ``scales`` (first 1), shared ``ratios``."""

    base: tuple[float, ...]
    scales: tuple[float, ...]
    ratios: tuple[float, ...]

    def sizes(self) -> tuple[tuple[float, ...], ...]:
        """Anchor sizes per level ``round(base_l * scale_i, 4)`` (as stored in the preset and the snippets)."""
        return tuple(tuple(round(float(b) * float(s), 4) for s in self.scales) for b in self.base)

    def key(self) -> tuple:
        """Hashable identity (the rounded numbers)."""
        return (self.base, self.scales, self.ratios)

    def to_dict(self) -> dict:
        """Plain dict for JSON."""
        return {"base_sizes": list(self.base), "scales": list(self.scales), "ratios": list(self.ratios)}


def _round_params(base, scales, ratios) -> AnchorParams:
    b = tuple(sorted(round(float(np.clip(v, *SIZE_RANGE)), 2) for v in base))  # finer level, smaller base size
    s = (1.0,) + tuple(round(float(np.clip(v, *SCALE_RANGE)), 4) for v in list(scales)[1:])
    r = tuple(sorted(round(float(np.clip(v, *RATIO_RANGE)), 4) for v in ratios))
    return AnchorParams(b, s, r)


def project_preset(preset) -> AnchorParams:
    """The preset's sizes and ratios projected onto the search space (log least squares; exact when rank one).

    ``log size[l, i] ~ log base_l + log scale_i`` with ``scale_0 = 1``; ratios: the geometric mean over levels
    of each ratio position (exact when every level has the same ratios).
    """
    S = np.log(np.array(preset.sizes, dtype=np.float64))  # (L, S)
    log_scale = (S - S[:, :1]).mean(axis=0)
    log_base = (S - log_scale[None, :]).mean(axis=1)
    R = np.log(np.array(preset.aspect_ratios, dtype=np.float64)).mean(axis=0)
    return _round_params(np.exp(log_base), np.exp(log_scale), np.exp(R))


def apply_params(preset, params: AnchorParams, name: str | None = None):
    """A copy of ``preset`` with ``params``' sizes and ratios (every other field kept)."""
    L = preset.num_levels
    return replace(
        preset, name=name or f"{preset.name}-fitted", sizes=params.sizes(), aspect_ratios=(tuple(params.ratios),) * L
    )


def kmeans_start(wh: np.ndarray, L: int, S: int, R: int, rng: np.random.Generator) -> AnchorParams | None:
    """k-means centroids (``L*S*R`` clusters) mapped onto the search space (sizes -> L x S grid, ratios -> R)."""
    wh = wh[np.isfinite(wh).all(axis=1) & (wh[:, 0] > 0) & (wh[:, 1] > 0)]  # a box beyond float32 has no shape
    K = L * S * R
    if len(wh) < K:
        return None
    if len(wh) > KMEANS_MAX_BOXES:
        wh = wh[np.sort(rng.choice(len(wh), KMEANS_MAX_BOXES, replace=False))]
    c = kmeans_iou(wh, K, rng)
    size = np.sqrt(c[:, 0] * c[:, 1])
    ratio = c[:, 1] / c[:, 0]
    grid = np.log(np.sort(size)).reshape(L * S, R).mean(axis=1).reshape(L, S)  # ascending: P3 small .. large
    log_scale = (grid - grid[:, :1]).mean(axis=0)
    log_base = (grid - log_scale[None, :]).mean(axis=1)
    r = np.exp(np.array([chunk.mean() for chunk in np.array_split(np.sort(np.log(ratio)), R)]))
    return _round_params(np.exp(log_base), np.exp(log_scale), r)


def _uniform_counts(original) -> tuple[int, int, int]:
    """``(levels, sizes, ratios)`` of a preset with one count of sizes and of ratios on every level (else refused)."""
    L, S, R = original.num_levels, len(original.sizes[0]), len(original.aspect_ratios[0])
    if any(len(s) != S for s in original.sizes) or any(len(r) != R for r in original.aspect_ratios):
        raise InputError(
            f"preset {original.name!r} has different numbers of sizes or ratios per level; a fitted "
            "set keeps one count per location for every level (as the frameworks' shared heads need)"
        )
    return L, S, R


def _preset_scorer(device: str, freq, size_by: str, objective: str) -> Callable:
    """``score_preset(preset, dataset) -> (metrics, labelled pass)``: the anchor pass and its fit metrics."""

    def score_preset(p, ds):
        lp = label_anchors(ds, p, device=device)
        m = label_metrics(lp, ds, freq, size_by)
        if objective == "bpr":  # YOLO-style: AutoAnchor's metric over the resized shapes
            wh = lp.scaled_boxes[:, 2:4] - lp.scaled_boxes[:, 0:2]
            m.update(bpr_metrics(wh, np.array([a for lv in p.anchors for a in lv]), getattr(p, BPR_PRESET_ATTRIBUTE)))
        return m, lp

    return score_preset


@dataclass(frozen=True)
class GridSpace:
    """The search space of a grid preset ``original`` with ``counts`` = (levels, sizes, ratios) per location: the
    starts, the log-space coordinates the evolution mutates, and how the fit is written (JSON, snippets, TOML)."""

    original: Any
    counts: tuple[int, int, int]
    device: str = "cpu"
    #: How the space is searched, as the report states it.
    method: ClassVar[str] = (
        "(1+1) evolution in log space from the best start (preset projection, scaled projections, 1-IoU k-means)"
    )

    @classmethod
    def of(cls, original, dataset: Dataset, device: str = "cpu") -> "GridSpace":
        """The space of ``original`` (a preset with different counts per level is refused with one line)."""
        return cls(original, _uniform_counts(original), device)

    def scorer(self, freq, size_by: str, objective: str) -> Callable:
        """``score_preset(preset, dataset) -> (metrics, labelled pass)`` on ``device``."""
        return _preset_scorer(self.device, freq, size_by, objective)

    def build(self, params: AnchorParams, name: str | None = None):
        """The preset of ``params``."""
        return apply_params(self.original, params, name)

    def projection(self) -> AnchorParams:
        """The preset's own sizes and ratios in the space."""
        return project_preset(self.original)

    def kmeans(self, wh: np.ndarray, seed: int) -> AnchorParams | None:
        """The k-means start of the box shapes ``wh`` (None with fewer boxes than clusters)."""
        L, S, R = self.counts
        return kmeans_start(wh, L, S, R, np.random.default_rng(seed))

    def scaled(self, params: AnchorParams, factor: float) -> AnchorParams:
        """``params`` with every size times ``factor`` (a level-consistent re-scaling)."""
        return _round_params(np.array(params.base) * factor, params.scales, params.ratios)

    def encode(self, params: AnchorParams) -> np.ndarray:
        """The log-space vector the evolution mutates: base sizes, scales after the first, ratios."""
        return np.log(np.array(params.base + params.scales[1:] + params.ratios))

    def decode(self, e: np.ndarray) -> AnchorParams:
        """The rounded point of ``exp(vector)`` (:meth:`encode`'s layout)."""
        n_b, n_s = self.counts[0], self.counts[1] - 1
        return _round_params(e[:n_b], np.concatenate(([1.0], e[n_b : n_b + n_s])), e[n_b + n_s :])

    @staticmethod
    def preset_dict(p) -> dict:
        """The preset as the report's JSON states it."""
        return {
            "name": p.name,
            "sizes": [list(s) for s in p.sizes],
            "aspect_ratios": [list(r) for r in p.aspect_ratios],
            "strides": list(p.strides),
            "level_names": list(p.level_names),
            "pos_iou": float(p.pos_iou),
            "neg_iou": float(p.neg_iou),
            "matcher": p.matcher,
            "assigner": p.assigner,
            "anchor_rule": p.anchor_rule,
        }

    @staticmethod
    def configs(fitted, params: AnchorParams, targets: tuple[str, ...] | None) -> dict:
        """The framework snippets of the fitted preset (torchvision, mmdetection, detectron2)."""
        return framework_configs(fitted, params, targets)

    @staticmethod
    def toml(fitted) -> str:
        """The fitted preset as a grid preset TOML."""
        return preset_to_toml(fitted)
