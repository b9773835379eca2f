"""Anchors as a detector lays them: presets (plain dataclasses), a generator bit-for-bit like
torchvision's, and one matcher semantics (torchvision / mmdet / ssd) with two engines (dense on any
torch device, culled on the CPU) held to identical labels by a property test."""

from imbalance_cli.anchors.generator import (
    grid_anchors, level_layout, num_anchors, padded_size, padded_sizes, resized_size, scale_boxes,
)
from imbalance_cli.anchors.matcher import MatchResult, culled_match_dataset, dense_match_dataset, match
from imbalance_cli.anchors.presets import PRESETS, AnchorPreset, ResizePolicy, get_preset

__all__ = [
    "AnchorPreset", "ResizePolicy", "PRESETS", "get_preset", "resized_size", "padded_size", "padded_sizes",
    "scale_boxes", "grid_anchors", "level_layout", "num_anchors", "match", "MatchResult", "culled_match_dataset",
    "dense_match_dataset",
]
