"""Matching one image's anchors to its boxes with either engine (:func:`match`).

The matcher is split by responsibility: IoU kernels (:mod:`~imbalance_cli.anchors.iou`), per-image
layouts (:mod:`~imbalance_cli.anchors.layouts`), labelling semantics and the result type
(:mod:`~imbalance_cli.anchors.rules`), the dense engine (:mod:`~imbalance_cli.anchors.dense`), the
culled engine (:mod:`~imbalance_cli.anchors.culled`) and the bounded-memory, multi-process pass over
a dataset (:mod:`~imbalance_cli.anchors.run`). This module holds the one-image entry point.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from imbalance_cli.anchors import rules
from imbalance_cli.anchors.culled import culled_match_dataset, enumerate_pairs
from imbalance_cli.anchors.dense import dense_match_batched
from imbalance_cli.anchors.generator import F32, num_anchors
from imbalance_cli.anchors.layouts import ImageLayouts, ShapeTable
from imbalance_cli.anchors.rules import MatchOutput, group_starts

__all__ = ["MatchResult", "match"]


class MatchResult(NamedTuple):
    """Result of :func:`match` for one image.

    ``matched`` int64 (A,): box index >= 0, -1 negative, -2 ignored. ``iou`` float32 (A,): for a
    positive its IoU with its matched box, otherwise the anchor's best IoU (NaN where the culled
    engine did not need it: such anchors are below ``neg_iou`` with every box).
    ``box_max_iou`` float32 (M,): each box's highest IoU over all anchors.
    """

    matched: "object"
    iou: "object"
    box_max_iou: "object"


def match(
    anchors,
    boxes,
    pos_iou: float,
    neg_iou: float,
    allow_low_quality: bool = True,
    semantics: str = "torchvision",
    engine: str = "dense",
    layout: tuple | None = None,
    max_elements: int = 1 << 24,
) -> MatchResult:
    """Match one image's anchors (A, 4) to its boxes (M, 4) (torch tensors, xyxy, same image frame).

    ``engine="culled"`` needs ``layout=(preset, padded_h, padded_w)`` describing how ``anchors``
    were generated (``grid_anchors(preset, padded_h, padded_w)``); it returns the same labels and
    matched indices as the dense engine (NaN IoU for anchors it never compared).
    """
    import torch

    rules.check(semantics, engine)
    if engine == "dense":
        valid = torch.ones((1, boxes.shape[0]), dtype=torch.bool, device=anchors.device)
        out = dense_match_batched(
            anchors,
            boxes.reshape(1, -1, 4).to(anchors.device),
            valid,
            pos_iou,
            neg_iou,
            allow_low_quality,
            semantics,
            max_elements,
        )
        return MatchResult(out.matched[0], out.iou[0], out.box_max[0])
    return _match_culled(anchors, boxes, layout, pos_iou, neg_iou, allow_low_quality, semantics)


def _match_culled(anchors, boxes, layout, pos_iou: float, neg_iou: float, allow_low_quality: bool, semantics: str):
    """:func:`match` by the culled engine: one image through :func:`culled_match_dataset`, ignored anchors added."""
    import torch

    if layout is None:
        raise ValueError("engine='culled' needs layout=(preset, padded_h, padded_w) of the anchors")
    preset, ph, pw = layout
    A = int(num_anchors(preset, ph, pw))
    if anchors.shape[0] != A:
        raise ValueError(f"anchors ({anchors.shape[0]}) do not match the layout's {A} anchors")
    b = boxes.detach().cpu().numpy().astype(F32).reshape(-1, 4)
    M = len(b)
    matched = np.full(A, -1, np.int64)
    iou = np.full(A, np.nan, F32)
    if M == 0:
        return MatchResult(torch.from_numpy(matched), torch.from_numpy(iou), torch.zeros(0))
    res = culled_match_dataset(
        preset,
        b,
        np.zeros(M, np.int64),
        np.array([ph]),
        np.array([pw]),
        pos_iou=pos_iou,
        neg_iou=neg_iou,
        allow_low_quality=allow_low_quality,
        semantics=semantics,
    )
    ign, ign_iou = _ignored_anchors(preset, b, ph, pw, res, pos_iou, neg_iou, semantics)
    matched[ign] = -2
    iou[ign] = ign_iou
    matched[res.pos_anchor] = res.pos_box
    iou[res.pos_anchor] = res.pos_iou
    return MatchResult(torch.from_numpy(matched), torch.from_numpy(iou), torch.from_numpy(res.box_max_iou))


def _ignored_anchors(preset, b, ph, pw, res: MatchOutput, pos_iou, neg_iou, semantics):
    """Anchor indices (one image) with best IoU in [neg, pos) that are not positive, and their best IoU."""
    empty = (np.zeros(0, np.int64), np.zeros(0, F32))
    if semantics == "ssd" or F32(neg_iou) >= F32(pos_iou):
        return empty
    lay = ImageLayouts(preset, np.array([ph]), np.array([pw]))
    shapes = ShapeTable(preset, ph, pw)
    t = np.full(len(b), F32(neg_iou), F32)
    cand = enumerate_pairs(preset, shapes, lay, b, np.zeros(len(b), np.int64), t, np.arange(len(b)))
    if cand is None:
        return empty
    o = np.argsort(cand["anchor"], kind="stable")
    ks = cand["anchor"][o]
    st = group_starts(ks)
    a, v = ks[st], np.maximum.reduceat(cand["iou"][o], st)
    keep = ~np.isin(a, res.pos_anchor)
    return a[keep], v[keep]
