"""Anchors as a detector lays them: presets (plain dataclasses), a generator bit-for-bit like
torchvision's, one labelling semantics (torchvision / mmdet / ssd, :mod:`.rules`) with two engines
(dense on any torch device, :mod:`.dense`; culled on the CPU, :mod:`.culled`) held to identical
labels by a property test, and a bounded-memory multi-process pass over a dataset (:mod:`.run`)."""

from imbalance_cli.anchors.culled import culled_match_dataset
from imbalance_cli.anchors.dense import dense_match_dataset
from imbalance_cli.anchors.generator import (
    grid_anchors,
    level_layout,
    num_anchors,
    padded_size,
    padded_sizes,
    resized_size,
    scale_boxes,
)
from imbalance_cli.anchors.layouts import ImageLayouts, ShapeTable
from imbalance_cli.anchors.matcher import MatchResult, match
from imbalance_cli.anchors.presets import PRESETS, AnchorPreset, ResizePolicy, get_preset
from imbalance_cli.anchors.rules import ASSIGNERS, MatchOutput, register_assigner

__all__ = [
    "AnchorPreset",
    "ResizePolicy",
    "PRESETS",
    "get_preset",
    "resized_size",
    "padded_size",
    "padded_sizes",
    "scale_boxes",
    "grid_anchors",
    "level_layout",
    "num_anchors",
    "match",
    "MatchResult",
    "culled_match_dataset",
    "dense_match_dataset",
    "MatchOutput",
    "ImageLayouts",
    "ShapeTable",
    "ASSIGNERS",
    "register_assigner",
]
