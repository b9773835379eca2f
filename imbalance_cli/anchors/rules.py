"""Labelling semantics both engines share, the engine-neutral result, and the assigner registry.

Label convention (torchvision ``Matcher``): ``matched[a] >= 0`` is the index of the box anchor
``a`` is assigned to (a positive), ``-1`` a negative (background), ``-2`` ignored. IoU is
torchvision's ``box_iou`` in float32 and thresholds are compared in float32.

Semantics
---------
``torchvision`` (``torchvision.models.detection._utils.Matcher(high, low, allow_low_quality_matches)``)
    each anchor takes its best box (first box on ties); IoU >= ``pos_iou`` positive,
    ``[neg_iou, pos_iou)`` ignored, ``< neg_iou`` negative; with ``allow_low_quality``, for each
    box, every anchor whose IoU equals that box's highest IoU becomes positive, matched to *its
    own* best box (``Matcher.set_low_quality_matches_``).
``mmdet`` (mmdetection ``MaxIoUAssigner`` with ``min_pos_iou=0``, ``gt_max_assign_all=True``)
    the same thresholds; the low-quality step assigns every anchor tying a box's highest IoU to
    *that* box, boxes taken in order so later boxes override earlier ones.
``ssd`` (torchvision ``SSDMatcher(pos_iou)``)
    IoU >= ``pos_iou`` positive (best box), else negative; then each box's single best anchor
    (lowest anchor index on ties) is forced to that box, later boxes overriding.

Assigners (the contract for other assignment rules)
---------------------------------------------------
The anchor pass (:mod:`imbalance_cli.anchors.run`) dispatches on ``getattr(preset, "assigner",
"max_iou")``. ``"max_iou"`` is the IoU-threshold rule above, run by the culled engine
(:mod:`~imbalance_cli.anchors.culled`, CPU) or the dense engine (:mod:`~imbalance_cli.anchors.dense`,
any torch device). Any other value is looked up in :data:`ASSIGNERS`, a plain dict from name to a
function ``fn(preset, boxes, box_image, padded_h, padded_w, *, semantics, images=None) ->
MatchOutput``: ``boxes`` float32 (N, 4) in resized-image pixels, ``box_image`` (N,) image rows
sorted ascending (0-based within the chunk), ``padded_h/w`` (n_images,) int64; the function returns
a :class:`MatchOutput` for exactly those images (``pos_box`` indexing ``boxes``). Modules that
provide assigners add themselves with :func:`register_assigner` when imported (the anchor pass
imports :data:`ASSIGNER_MODULES`). An unknown name is an :class:`~imbalance_cli.errors.InputError`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from imbalance_cli.anchors.presets import MATCHER_SEMANTICS
from imbalance_cli.errors import InputError

ENGINES = ("dense", "culled")
IDX = np.int32  # image rows and box indices of positives (datasets < 2**31 boxes); keeps 20 M positives small
F32 = np.float32

#: name -> assigner function (see the module docstring for the signature).
ASSIGNERS: dict[str, Callable] = {}
#: modules imported (if present) before an assigner is looked up; each registers its names.
ASSIGNER_MODULES = ("imbalance_cli.anchors.assigners",)


def register_assigner(name: str, fn: Callable) -> Callable:
    """Add ``fn`` to :data:`ASSIGNERS` under ``name`` (returns ``fn``, usable as a decorator body)."""
    ASSIGNERS[name] = fn
    return fn


def get_assigner(name: str) -> Callable:
    """The assigner registered as ``name`` (importing :data:`ASSIGNER_MODULES` first)."""
    if name not in ASSIGNERS:
        for mod in ASSIGNER_MODULES:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as e:
                if e.name != mod:
                    raise
    if name not in ASSIGNERS:
        known = ", ".join(["max_iou", *sorted(ASSIGNERS)])
        raise InputError(f"unknown anchor assigner {name!r} (known: {known})")
    return ASSIGNERS[name]


@dataclass
class MatchOutput:
    """Engine-neutral labelling result over some images, everything as numpy.

    Positives: ``pos_image`` (image row, int32), ``pos_anchor`` (anchor index within its image, int64),
    ``pos_level`` (int8), ``pos_box`` (index into the boxes passed in, int32), ``pos_iou`` (IoU with
    matched box, float32).
    ``ignored_per_image`` (n_img,); ``box_max_iou`` / ``box_best_anchor`` / ``box_best_level`` (N,):
    each box's highest IoU and the first anchor (lowest index) attaining it; ``fallback_images``:
    images the culled engine handed to the dense engine; ``pos_x1`` / ``pos_y1`` (float32 or None):
    the positives' anchor top-left corners where the engine has them (the culled engine does);
    ``box_ignored`` (N,) int64: ignored anchors by their best box (first on ties, as ``torch.max``; an
    anchor with IoU 0 with every box: its image's first box); zeros where none is given (the ATSS / FCOS /
    YOLOv5 assigners ignore no anchor).
    """

    pos_image: np.ndarray
    pos_anchor: np.ndarray
    pos_level: np.ndarray
    pos_box: np.ndarray
    pos_iou: np.ndarray
    ignored_per_image: np.ndarray
    box_max_iou: np.ndarray
    box_best_anchor: np.ndarray
    box_best_level: np.ndarray
    fallback_images: int = 0
    pos_x1: np.ndarray | None = None
    pos_y1: np.ndarray | None = None
    box_ignored: np.ndarray | None = None

    def __post_init__(self):
        if self.box_ignored is None:
            self.box_ignored = np.zeros(len(self.box_max_iou), np.int64)


def thresholds(preset, semantics: str, pos_iou=None, neg_iou=None, allow_low_quality=None) -> tuple[float, float, bool]:
    """Positive/negative IoU thresholds and the low-quality flag of a semantics (overrides win over the preset).

    SSD's matcher has no ignored band: its negative threshold is the positive one.
    """
    pos = float(preset.pos_iou if pos_iou is None else pos_iou)
    neg = float(preset.neg_iou if neg_iou is None else neg_iou)
    if semantics == "ssd":
        neg = pos
    lowq = preset.allow_low_quality if allow_low_quality is None else bool(allow_low_quality)
    return pos, neg, lowq


def check(semantics: str, engine: str) -> None:
    """Raise ``ValueError`` for an unknown semantics or engine name (library callers)."""
    if semantics not in MATCHER_SEMANTICS:
        raise ValueError(f"matcher semantics must be one of {MATCHER_SEMANTICS}, got {semantics!r}")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")


def has_low_quality_step(semantics: str, allow_low_quality: bool) -> bool:
    """Whether boxes' best anchors are re-labelled after thresholding (low-quality or forced matches)."""
    return semantics == "ssd" or (semantics in ("torchvision", "mmdet") and allow_low_quality)


# ----------------------------------------------------------------------------------------------
# dense (torch) form of the rules
# ----------------------------------------------------------------------------------------------


def threshold_labels(amax, aarg, hi, lo, semantics: str):
    """Labels before the low-quality step from each anchor's best IoU ``amax`` and best box ``aarg``."""
    import torch

    if semantics == "mmdet":
        matched = torch.full_like(aarg, -2)
        matched = torch.where(amax < lo, torch.full_like(matched, -1), matched)
        return torch.where(amax >= hi, aarg, matched)
    matched = aarg.clone()
    low = hi if semantics == "ssd" else lo
    matched = torch.where(amax < low, torch.full_like(matched, -1), matched)
    if semantics == "torchvision":
        between = (amax >= lo) & (amax < hi)
        matched = torch.where(between, torch.full_like(matched, -2), matched)
    return matched


def low_quality_update(matched_chunk, aarg_chunk, tie, order, semantics: str):
    """Low-quality step on a chunk of anchors: ``tie`` (B, M, C) marks anchors equal to a box's best IoU.

    torchvision: a tying anchor takes its own best box; mmdet: the last tying box (``order`` is
    1..M broadcast over (1, M, 1)).
    """
    import torch

    if semantics == "torchvision":
        return torch.where(tie.any(dim=1), aarg_chunk, matched_chunk)
    last = (tie * order).max(dim=1).values - 1
    return torch.where(last >= 0, last, matched_chunk)


def ssd_forced(matched, gbest, valid):
    """SSD: each box's best anchor ``gbest`` (B, M) forced to that box, later boxes overriding."""
    import torch

    B, M = gbest.shape
    dev = gbest.device
    src = torch.where(
        valid, torch.arange(M, device=dev)[None, :].expand(B, M), torch.full((B, M), -1, device=dev, dtype=torch.int64)
    )
    forced = torch.full_like(matched, -1)
    forced.scatter_reduce_(1, gbest, src, reduce="amax", include_self=True)
    return torch.where(forced >= 0, forced, matched)


# ----------------------------------------------------------------------------------------------
# sorted-key helpers (the culled engine's sparse form of the rules is its compiled pass, anchors/kernel.py)
# ----------------------------------------------------------------------------------------------


def group_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of every run of equal values in a sorted array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
