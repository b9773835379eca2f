"""Anchor presets: plain dataclasses, a registry dict, and user presets from TOML.

A preset is plain data: the anchor layout, the labelling thresholds and which framework's arithmetic each
step follows (``resize.rule``, ``box_rule``, ``anchor_rule``, ``stride_rule``, ``center_offset``, ``assigner``);
the arithmetic itself lives in :mod:`imbalance_cli.anchors.generator` and the assigners. Built-in presets
(:data:`PRESETS`), each the detector a user trains:

* ``retinanet`` -- torchvision ``retinanet_resnet50_fpn`` as torchvision 0.28 runs it: resize 800/1333 (floor),
  pad to 32, P3..P7, sizes ``(x, int(x 2^(1/3)), int(x 2^(2/3)))`` for x in 32..512, ratios (h/w) 0.5/1/2,
  rounded base anchors, steps ``padded // grid`` as ``AnchorGenerator.forward`` derives them
  (``stride_rule = "model"``), ``Matcher(0.5, 0.4, allow_low_quality_matches=True)``.
* ``rpn`` -- the RPN of torchvision ``fasterrcnn_resnet50_fpn``: P2..P6, strides 4..64, one size per level
  32..512, ratios 0.5/1/2, ``Matcher(0.7, 0.3, allow_low_quality_matches=True)``, ``model`` steps.
* ``ssd300`` -- torchvision ``ssd300_vgg16``: fixed 300x300 resize, ``DefaultBoxGenerator`` with aspect ratios
  [[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales 0.07..1.05, steps 8, 16, 32, 64, 100, 300, clipped
  width/height, 8732 default boxes; ``SSDMatcher(0.5)``.
* ``mmdet-retinanet`` -- mmdetection 3.x ``retinanet_r50_fpn_1x_coco``: mmcv keep-ratio resize (rounded),
  pad to 32, ``AnchorGenerator(octave_base_scale=4, scales_per_octave=3, ratios=[0.5, 1, 2],
  strides=[8..128])`` unrounded, ``MaxIoUAssigner(0.5, 0.4, min_pos_iou=0)`` (matcher ``mmdet``).
* ``detectron2-retinanet`` -- detectron2 RetinaNet R50-FPN 1x: ``ResizeShortestEdge(800, 1333)``, pad to 32,
  ``DefaultAnchorGenerator`` sizes x 2^(0, 1/3, 2/3), ratios 0.5/1/2, offset 0, unrounded, size-major;
  ``Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)`` = the ``torchvision`` semantics.
* ``atss`` -- ATSS (Zhang et al., CVPR 2020) as mmdetection's ``ATSSAssigner``: one square anchor of
  8 x stride per location, top-k 9 per level, IoU threshold mean + std, centre inside the box.
* ``fcos`` -- FCOS (Tian et al., ICCV 2019) as mmdetection's ``FCOSHead``: points at (j + 0.5) stride,
  regression ranges (-1, 64) .. (512, 1e8), centre sampling radius 1.5, ambiguous points to the smallest box.

A user preset is a TOML file mapping onto :class:`AnchorPreset`::

    name = "small"
    kind = "grid"                       # or "ssd", or "point" (with assigner = "fcos")
    strides = [8, 16, 32]
    sizes = [[32, 40, 50], [64, 80, 101], [128, 161, 203]]
    aspect_ratios = [[0.5, 1.0, 2.0]]   # one list for every level, or one per level
    level_names = ["P3", "P4", "P5"]    # optional
    pos_iou = 0.5
    neg_iou = 0.4
    allow_low_quality = true
    matcher = "torchvision"             # default matcher semantics: torchvision | mmdet | ssd
    stride_rule = "fixed"               # or "model" (steps padded // grid, torchvision)
    anchor_rule = "torchvision"         # base anchors: torchvision | mmdet | detectron2
    box_rule = "torchvision"            # box transform + filtering: torchvision | mmdet | detectron2
    center_offset = 0.0                 # in strides (mmdet / detectron2 anchors, FCOS points)
    assigner = "max_iou"                # or "atss" (topk = 9) or "fcos" (regress_ranges, center_radius)
    [resize]                            # optional; defaults 800 / 1333 / 32
    min_size = 800
    max_size = 1333
    size_divisible = 32
    rule = "torchvision"                # torchvision (floor) | mmcv (round) | detectron2
    # fixed = [300, 300]                # (height, width): resize every image to exactly this

For ``kind = "ssd"`` give ``scales`` (one more than levels) instead of ``sizes``; the ``aspect_ratios`` are
then SSD's extra ratios per level (1 and the intermediate scale are always added), and ``clip`` (default
true) clamps relative widths/heights to [0, 1]. Limits are listed in :func:`validate_preset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np

from imbalance_cli.anchors import schema as S
from imbalance_cli.anchors.tomlfile import read_toml
from imbalance_cli.errors import InputError, did_you_mean

MATCHER_SEMANTICS = ("torchvision", "mmdet", "ssd")


@dataclass(frozen=True)
class ResizePolicy:
    """How an image is resized before anchors are laid on it (torchvision ``GeneralizedRCNNTransform``).

    ``fixed`` = (height, width) resizes every image to exactly that size. Otherwise the scale is
    ``min(min_size / min(H, W), max_size / max(H, W))`` (a missing bound is dropped; both missing:
    no resize), the resized size ``floor(H s) x floor(W s)`` (``rule = "torchvision"``), ``int(H s + 0.5)``
    (``"mmcv"``) or detectron2's ``ResizeShortestEdge`` arithmetic (``"detectron2"``; see
    :func:`imbalance_cli.anchors.generator.resized_sizes`), then padded up to a multiple of ``size_divisible``.
    """

    min_size: int | None = 800
    max_size: int | None = 1333
    fixed: tuple[int, int] | None = None
    size_divisible: int = 32
    rule: str = "torchvision"  # size arithmetic: torchvision (floor) | mmcv (round) | detectron2


@dataclass(frozen=True)
class AnchorPreset:
    """An anchor layout plus its labelling thresholds.

    ``sizes[l]`` are the anchor sizes (square-root areas, pixels of the resized image) of level
    ``l``; ``aspect_ratios[l]`` the ratios h/w. Base anchors are built as ``anchor_rule`` says
    (torchvision: ratio-major and rounded); anchor centres lie at ``(j * step_x, i * step_y)``
    (plus ``center_offset`` strides for detectron2), the steps as ``stride_rule`` says.
    For ``kind == "ssd"`` the anchors are torchvision's ``DefaultBoxGenerator`` boxes built from
    ``scales`` (relative to the image) and ``aspect_ratios`` (the extra ratios per level), with
    ``strides`` as the steps. For ``kind == "point"`` (FCOS) there are no sizes: one point per location.
    The rule fields (``stride_rule``, ``anchor_rule``, ``box_rule``, ``center_offset``, ``resize.rule``)
    say whose arithmetic each step follows; ``assigner`` picks max-IoU matching (``matcher`` semantics),
    ATSS (``topk``) or FCOS (``regress_ranges``, ``center_radius``).
    """

    name: str
    sizes: tuple[tuple[float, ...], ...]
    aspect_ratios: tuple[tuple[float, ...], ...]
    strides: tuple[int, ...]
    level_names: tuple[str, ...]
    resize: ResizePolicy = field(default_factory=ResizePolicy)
    pos_iou: float = 0.5
    neg_iou: float = 0.4
    allow_low_quality: bool = True
    kind: str = "grid"  # "grid" | "ssd"
    scales: tuple[float, ...] = ()  # ssd only: len(levels) + 1 relative scales
    clip: bool = True  # ssd only: clamp relative w/h to [0, 1]
    matcher: str = "torchvision"  # default matcher semantics for this preset
    stride_rule: str = "fixed"  # "fixed" nominal strides | "model" padded // grid (torchvision)
    anchor_rule: str = "torchvision"  # base anchors: torchvision | mmdet | detectron2
    box_rule: str = "torchvision"  # box transform + filtering: torchvision | mmdet | detectron2
    center_offset: float = 0.0  # mmdet/detectron2 anchor centre offset, point offset (units of stride)
    assigner: str = "max_iou"  # "max_iou" (matcher semantics) | "atss" | "fcos"
    topk: int = 9  # atss: candidates per level
    center_radius: float = 1.5  # fcos: centre sampling radius (units of stride); 0 = no centre sampling
    regress_ranges: tuple[tuple[float, float], ...] = ()  # fcos: per-level (low, high) of max(l, t, r, b)
    #: the TOML file the preset was read from (None for a built-in): errors a preset causes name it
    source: str | None = field(default=None, compare=False)

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.strides)

    def anchors_per_location(self, level: int) -> int:
        """Anchors at each grid position of ``level``."""
        if self.kind == "ssd":
            return 2 + 2 * len(self.aspect_ratios[level])
        if self.kind == "point":
            return 1
        return len(self.sizes[level]) * len(self.aspect_ratios[level])


def _retinanet() -> AnchorPreset:
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
    return AnchorPreset(
        name="retinanet",
        sizes=tuple(tuple(float(v) for v in s) for s in sizes),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5,
        strides=(8, 16, 32, 64, 128),
        level_names=("P3", "P4", "P5", "P6", "P7"),
        resize=ResizePolicy(800, 1333, None, 32),
        pos_iou=0.5,
        neg_iou=0.4,
        allow_low_quality=True,
        kind="grid",
        matcher="torchvision",
        stride_rule="model",
    )


def _rpn() -> AnchorPreset:
    return AnchorPreset(
        name="rpn",
        sizes=((32.0,), (64.0,), (128.0,), (256.0,), (512.0,)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5,
        strides=(4, 8, 16, 32, 64),
        level_names=("P2", "P3", "P4", "P5", "P6"),
        resize=ResizePolicy(800, 1333, None, 32),
        pos_iou=0.7,
        neg_iou=0.3,
        allow_low_quality=True,
        kind="grid",
        matcher="torchvision",
        stride_rule="model",
    )


def _ssd300() -> AnchorPreset:
    scales = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)
    return AnchorPreset(
        name="ssd300",
        sizes=tuple((s * 300.0,) for s in scales[:-1]),
        aspect_ratios=((2.0,), (2.0, 3.0), (2.0, 3.0), (2.0, 3.0), (2.0,), (2.0,)),
        strides=(8, 16, 32, 64, 100, 300),
        level_names=("conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2"),
        resize=ResizePolicy(300, 300, (300, 300), 1),
        pos_iou=0.5,
        neg_iou=0.5,
        allow_low_quality=False,
        kind="ssd",
        scales=scales,
        clip=True,
        matcher="ssd",
    )


_P3_P7 = ("P3", "P4", "P5", "P6", "P7")
_STRIDES = (8, 16, 32, 64, 128)


def _mmdet_octave_sizes(octave_base_scale: float, scales_per_octave: int) -> tuple[tuple[float, ...], ...]:
    """mmdetection ``AnchorGenerator``: base size = stride, scales ``octave_base_scale * 2^(i / n)``."""
    return tuple(
        tuple(float(s) * (2 ** (i / scales_per_octave) * octave_base_scale) for i in range(scales_per_octave))
        for s in _STRIDES
    )


def _mmdet_retinanet() -> AnchorPreset:
    return AnchorPreset(
        name="mmdet-retinanet",
        sizes=_mmdet_octave_sizes(4, 3),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5,
        strides=_STRIDES,
        level_names=_P3_P7,
        resize=ResizePolicy(800, 1333, None, 32, "mmcv"),
        pos_iou=0.5,
        neg_iou=0.4,
        allow_low_quality=True,
        kind="grid",
        matcher="mmdet",
        stride_rule="fixed",
        anchor_rule="mmdet",
        box_rule="mmdet",
        center_offset=0.0,
    )


def _detectron2_retinanet() -> AnchorPreset:
    sizes = tuple((x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)) for x in (32, 64, 128, 256, 512))
    return AnchorPreset(
        name="detectron2-retinanet",
        sizes=tuple(tuple(float(v) for v in s) for s in sizes),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5,
        strides=_STRIDES,
        level_names=_P3_P7,
        resize=ResizePolicy(800, 1333, None, 32, "detectron2"),
        pos_iou=0.5,
        neg_iou=0.4,
        allow_low_quality=True,
        kind="grid",
        matcher="torchvision",
        stride_rule="fixed",
        anchor_rule="detectron2",
        box_rule="detectron2",
        center_offset=0.0,
    )


def _atss() -> AnchorPreset:
    return AnchorPreset(
        name="atss",
        sizes=_mmdet_octave_sizes(8, 1),
        aspect_ratios=((1.0,),) * 5,
        strides=_STRIDES,
        level_names=_P3_P7,
        resize=ResizePolicy(800, 1333, None, 32, "mmcv"),
        pos_iou=0.5,
        neg_iou=0.4,
        allow_low_quality=False,
        kind="grid",
        matcher="mmdet",
        stride_rule="fixed",
        anchor_rule="mmdet",
        box_rule="mmdet",
        assigner="atss",
        topk=9,
    )


def _fcos() -> AnchorPreset:
    return AnchorPreset(
        name="fcos",
        sizes=(),
        aspect_ratios=((1.0,),) * 5,
        strides=_STRIDES,
        level_names=_P3_P7,
        resize=ResizePolicy(800, 1333, None, 32, "mmcv"),
        pos_iou=0.5,
        neg_iou=0.4,
        allow_low_quality=False,
        kind="point",
        matcher="mmdet",
        stride_rule="fixed",
        anchor_rule="mmdet",
        box_rule="mmdet",
        center_offset=0.5,
        assigner="fcos",
        center_radius=1.5,
        regress_ranges=((-1.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, FCOS_INF)),
    )


#: mmdetection's ``INF`` for the last FCOS regression range.
FCOS_INF = 1e8

#: Built-in presets by name (a plain registry dict).
PRESETS: dict[str, AnchorPreset] = {}

ASSIGNER_NAMES = ("max_iou", "atss", "fcos")
RESIZE_RULES = ("torchvision", "mmcv", "detectron2")
FRAMEWORK_RULES = ("torchvision", "mmdet", "detectron2")
STRIDE_RULES = ("fixed", "model")

#: Limits a preset must respect (checked before anything is allocated).
MAX_LEVELS = 16
MAX_STRIDE = 4096
MAX_SIDE = 100_000  # resize min_size / max_size / fixed sides, anchor sizes (pixels)
MAX_PER_LOCATION = 1000  # anchors per grid position (sizes x ratios, or SSD boxes)
MAX_ANCHORS_PER_IMAGE = 50_000_000  # at the largest padded size the resize can produce


MIN_ANCHOR_SIDE = 1.0  # every base anchor's width and height after the anchor rule's rounding (pixels)
MIN_RATIO, MAX_RATIO = 1e-4, 1e4  # aspect ratios h / w
KINDS = ("grid", "ssd", "point")


def _registered_assigners() -> tuple:
    """Assigner names: the built-in ones and any registered in :data:`imbalance_cli.anchors.rules.ASSIGNERS`
    (rules imports this module, hence lazily)."""
    from imbalance_cli.anchors import rules

    return tuple(dict.fromkeys(ASSIGNER_NAMES + tuple(rules.ASSIGNERS)))


def _levels(check: Callable, lo: int, hi: int) -> Callable:
    """A per-level field: an array of levels, each an array of ``lo`` to ``hi`` values passing ``check``."""

    def levels(field: str, v):
        return S.each(field, S.array(field, v, 0, MAX_LEVELS), lambda f, lv: S.each(f, S.array(f, lv, lo, hi), check))

    return levels


def _optional(check: Callable) -> Callable:
    """``check``, or ``None`` (the Python API's "no bound"; a TOML file cannot write it)."""
    return lambda field, v: None if v is None else check(field, v)


def _pair(check: Callable) -> Callable:
    return lambda field, v: S.each(field, S.array(field, v, 2, 2), check)


def _regress_range(field: str, v) -> tuple[float, float]:
    """An FCOS regression range ``[low, high]``: low finite in [-1, 1e8], high above it (``inf``: unbounded)."""
    lo, hi = S.array(field, v, 2, 2)
    lo = S.number(f"{field}[0]", lo, -1.0, FCOS_INF)
    if not (S.is_number(hi) and float(hi) > lo):  # NaN fails too
        raise S.FieldError(
            f"{field}[1]", f"must be a number above low ({lo:g}; inf for no bound), got {S.describe(hi)}"
        )
    return lo, float(hi)


_SIDE = lambda f, v: S.integer(f, v, 1, MAX_SIDE)  # noqa: E731 - resize sides (pixels)

#: Every field of :class:`AnchorPreset` (also the TOML keys) and its check: type and stated range.
FIELDS: dict[str, Callable] = {
    "name": S.string,
    "kind": lambda f, v: S.choice(f, v, KINDS),
    "strides": lambda f, v: S.each(f, S.array(f, v, 1, MAX_LEVELS), lambda g, s: S.integer(g, s, 1, MAX_STRIDE)),
    "sizes": _levels(lambda f, v: S.number(f, v, 0, MAX_SIDE, lo_open=True), 1, MAX_PER_LOCATION),
    "aspect_ratios": _levels(lambda f, v: S.number(f, v, MIN_RATIO, MAX_RATIO), 0, MAX_PER_LOCATION),
    "level_names": lambda f, v: S.each(f, S.array(f, v, 1, MAX_LEVELS), S.string),
    "pos_iou": lambda f, v: S.number(f, v, 0.0, 1.0, lo_open=True),
    "neg_iou": lambda f, v: S.number(f, v, 0.0, 1.0),
    "allow_low_quality": S.boolean,
    "scales": lambda f, v: S.each(
        f, S.array(f, v, 0, MAX_LEVELS + 1), lambda g, x: S.number(g, x, 0, 100, lo_open=True)
    ),
    "clip": S.boolean,
    "matcher": lambda f, v: S.choice(f, v, MATCHER_SEMANTICS),
    "stride_rule": lambda f, v: S.choice(f, v, STRIDE_RULES),
    "anchor_rule": lambda f, v: S.choice(f, v, FRAMEWORK_RULES),
    "box_rule": lambda f, v: S.choice(f, v, FRAMEWORK_RULES),
    "center_offset": lambda f, v: S.number(f, v, 0.0, 1.0),
    "assigner": lambda f, v: (
        v if isinstance(v, str) and v in ASSIGNER_NAMES else S.choice(f, v, _registered_assigners())
    ),
    "topk": lambda f, v: S.integer(f, v, 1, 1000),
    "center_radius": lambda f, v: S.number(f, v, 0.0, 100.0),
    "regress_ranges": lambda f, v: S.each(f, S.array(f, v, 0, MAX_LEVELS), _regress_range),
}
#: The fields of :class:`ResizePolicy` (TOML table ``[resize]``).
RESIZE_FIELDS: dict[str, Callable] = {
    "min_size": _optional(_SIDE),
    "max_size": _optional(_SIDE),
    "fixed": _optional(_pair(_SIDE)),
    "size_divisible": lambda f, v: S.integer(f, v, 1, MAX_STRIDE),
    "rule": lambda f, v: S.choice(f, v, RESIZE_RULES),
}


def validate_preset(preset: AnchorPreset, where: str | None = None) -> AnchorPreset:
    """Check a preset's fields, their consistency and the limits; raise :class:`InputError` naming ``where``
    and the field on failure.

    Each field's type and range is :data:`FIELDS` / :data:`RESIZE_FIELDS` (stated in the README): 1..16
    levels; strides integers in [1, 4096]; anchor sizes in (0, 100000]; aspect ratios in [1e-4, 1e4];
    resize sides integers in [1, 100000]; ``size_divisible`` in [1, 4096]. Then the rules between fields
    (:data:`RULES`): one entry per level everywhere, ``neg_iou <= pos_iou``, the assigner fitting the kind,
    at most 1000 anchors per grid position, every base anchor at least :data:`MIN_ANCHOR_SIDE` pixels wide
    and high after the anchor rule's rounding, at most 50 million anchors per image at the largest padded
    size the resize can produce. All checked before anything is allocated.
    """
    if not isinstance(preset, AnchorPreset) or not isinstance(preset.resize, ResizePolicy):
        raise InputError(f"not an anchor preset: {type(preset).__name__}", path=where)
    try:
        for name, check in FIELDS.items():
            check(name, getattr(preset, name))
        for name, check in RESIZE_FIELDS.items():
            check(f"resize.{name}", getattr(preset.resize, name))
        for rule in RULES:
            rule(preset)
    except S.FieldError as e:
        raise S.as_input_error(e, where) from None
    return preset


def _same_levels(p: AnchorPreset) -> None:
    n = p.num_levels
    for name in ("aspect_ratios", "level_names") + (("sizes",) if p.kind == "grid" else ()):
        if len(getattr(p, name)) != n:
            raise S.FieldError(name, f"{name} has {len(getattr(p, name))} levels but strides has {n}")
    if p.kind == "grid" and any(len(r) == 0 for r in p.aspect_ratios):
        raise S.FieldError("aspect_ratios", "every level needs at least one aspect ratio")
    if p.kind == "ssd":
        if len(p.scales) != n + 1:
            raise S.FieldError("scales", f"an ssd preset needs {n + 1} scales (levels + 1), got {len(p.scales)}")
        if p.resize.fixed is None:
            raise S.FieldError("resize.fixed", "an ssd preset needs a fixed resize ([resize] fixed = [height, width])")
    if p.assigner == "fcos":
        if len(p.regress_ranges) != n:
            raise S.FieldError(
                "regress_ranges", f"regress_ranges has {len(p.regress_ranges)} levels but strides has {n}"
            )


def _per_location(p: AnchorPreset) -> None:
    for lvl in range(p.num_levels):
        k = p.anchors_per_location(lvl)
        if k > MAX_PER_LOCATION:
            raise S.FieldError(
                "sizes" if p.kind == "grid" else "aspect_ratios",
                f"level {lvl} has {k} anchors per grid position; at most {MAX_PER_LOCATION} are allowed",
            )


def _thresholds(p: AnchorPreset) -> None:
    if p.neg_iou > p.pos_iou:
        raise S.FieldError(
            "neg_iou", f"thresholds must satisfy 0 <= neg_iou <= pos_iou <= 1, got pos {p.pos_iou:g}, neg {p.neg_iou:g}"
        )


def _assigner_fits(p: AnchorPreset) -> None:
    if p.kind == "point" and p.assigner != "fcos":
        raise S.FieldError("assigner", "a point preset (kind = 'point') needs assigner = 'fcos' (points have no IoU)")
    if p.assigner == "fcos" and p.kind != "point":
        raise S.FieldError("kind", "assigner 'fcos' needs kind = 'point'")
    if p.assigner == "atss" and p.kind != "grid":
        raise S.FieldError("kind", "assigner 'atss' needs a grid preset")
    if p.resize.rule == "detectron2" and p.resize.fixed is None and p.resize.min_size is None:
        raise S.FieldError("resize.min_size", "resize.rule 'detectron2' needs resize.min_size (the short edge length)")


def _anchor_sides(p: AnchorPreset) -> None:
    """Every base anchor at least :data:`MIN_ANCHOR_SIDE` wide and high, as the anchor rule builds it.

    A narrower anchor is rounded to (or is, in float32) a line of no area: its IoU with any box is 0, and
    the culled engine's bounds divide by its width. torchvision rounds base anchors to whole pixels, so
    size 32 with aspect ratio 1e4 is 0 x 3200 pixels there; size 1e-300 is no anchor at all.
    """
    if p.kind == "point":
        return
    from imbalance_cli.anchors.generator import level_shape_params  # generator imports this module

    side = _largest_padded_side(p.resize) or 1
    for lvl in range(p.num_levels):
        _, _, wa, ha, _, _ = level_shape_params(p, lvl, side, side)
        small = np.flatnonzero((wa < MIN_ANCHOR_SIDE) | (ha < MIN_ANCHOR_SIDE))
        if len(small):
            k = int(small[0])
            field = "scales" if p.kind == "ssd" else f"sizes[{lvl}]"
            raise S.FieldError(
                field,
                f"level {lvl} lays a base anchor of {wa[k]:g} x {ha[k]:g} pixels (shape {k}, "
                f"{p.anchor_rule if p.kind == 'grid' else 'ssd'} arithmetic); every anchor needs a width "
                f"and height of at least {MIN_ANCHOR_SIDE:g} pixel (raise the size or bring the aspect "
                "ratio nearer 1)",
            )


def _anchor_budget(p: AnchorPreset) -> None:
    side = _largest_padded_side(p.resize)
    if side is not None:
        worst = sum((-(-side // s)) ** 2 * p.anchors_per_location(lvl) for lvl, s in enumerate(p.strides))
        if worst > MAX_ANCHORS_PER_IMAGE:
            raise S.FieldError(
                "strides",
                f"this preset lays up to {worst:,} anchors on one {side} x {side} image; at "
                f"most {MAX_ANCHORS_PER_IMAGE:,} are allowed (raise the strides or lower the resize)",
            )


#: The rules between fields, in the order :func:`validate_preset` applies them.
RULES: tuple[Callable[[AnchorPreset], None], ...] = (
    _same_levels,
    _per_location,
    _thresholds,
    _assigner_fits,
    _anchor_sides,
    _anchor_budget,
)


def _largest_padded_side(r: ResizePolicy) -> int | None:
    """Largest side a resized, padded image can have (None when the resize leaves it unbounded)."""
    if r.fixed is not None:
        side = max(int(r.fixed[0]), int(r.fixed[1]))
    elif r.max_size is not None:
        side = int(r.max_size) + 1
    else:  # only a short-side target (or no resize): the long side is unbounded
        return None
    d = int(r.size_divisible)
    return -(-side // d) * d


for _p in (_retinanet(), _rpn(), _ssd300(), _mmdet_retinanet(), _detectron2_retinanet(), _atss(), _fcos()):
    PRESETS[_p.name] = validate_preset(_p)


def _load_toml(path: Path) -> dict:
    """A preset TOML file as a dict, read within bounds (:func:`imbalance_cli.anchors.tomlfile.read_toml`)."""
    return read_toml(path)


_KNOWN_KEYS = set(FIELDS) | {"resize"}
_RESIZE_KEYS = set(RESIZE_FIELDS)
#: Keys only a yolov5 preset has: seeing one names the preset kind in the error.
_YOLOV5_KEYS = {"anchors", "anchor_t", "img_size", "pad_stride", "offset_g"}


def _kinds():
    """:mod:`imbalance_cli.anchors.kinds` (imported on use: it imports the YOLOv5 kind, which imports the engine's
    rules, which import this module)."""
    from imbalance_cli.anchors import kinds

    return kinds


def yolov5_refused(name: str, where: str | None = None) -> InputError:
    """The error for a yolov5 preset given where only IoU-matched presets apply."""
    return InputError(
        f"{name} is a yolov5 preset (YOLOv5's width/height ratio test, no IoU): this command lays "
        "IoU-matched anchors only; use a grid preset (retinanet, rpn, ssd300, mmdet-retinanet, "
        "detectron2-retinanet, atss, fcos or a grid TOML)",
        path=where,
    )


def preset_from_dict(data: dict, where: str | None = None) -> AnchorPreset:
    """Build an :class:`AnchorPreset` from a TOML-shaped dict (see module docstring); InputError on bad data.

    Every value is checked for its type and range where it enters (:data:`FIELDS`): a string is never read
    as a boolean or a number, an integer field refuses ``8.7``; the error names the file and the field.
    """
    if not isinstance(data, dict):
        raise InputError(f"an anchor preset must be a table of keys, got {S.describe(data)}", path=where)
    unknown = set(data) - _KNOWN_KEYS
    if isinstance(data.get("kind"), str) and data["kind"] in _kinds().KINDS:
        raise yolov5_refused("this file", where)
    if "kind" not in data and unknown and unknown <= _YOLOV5_KEYS:
        raise InputError(
            f"has the keys of a yolov5 preset ({', '.join(sorted(unknown))}) but no kind: add "
            'kind = "yolov5" (or write a grid preset)',
            path=where,
            record="field 'kind'",
        )
    if unknown:
        raise InputError(
            f"unknown key(s) in anchor preset: {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(_KNOWN_KEYS))})",
            path=where,
        )
    try:
        preset = _preset_fields(data, where)
    except S.FieldError as e:
        raise S.as_input_error(e, where) from None
    return validate_preset(preset, where)


def _per_level(raw, one_level: bool) -> list:
    """Per-level lists from a TOML value: a flat list is one level (``one_level``) or one value per level."""
    if not isinstance(raw, (list, tuple)):
        return raw  # the field check names the type
    if one_level and all(not isinstance(r, (list, tuple)) for r in raw):
        return [list(raw)]
    return [list(r) if isinstance(r, (list, tuple)) else [r] for r in raw]


def _preset_fields(data: dict, where: str | None) -> AnchorPreset:
    """The dataclass of a preset dict, every field checked by :data:`FIELDS` (defaults by kind)."""
    kind = FIELDS["kind"]("kind", data.get("kind", "grid"))
    if "strides" not in data:
        raise S.FieldError("strides", "anchor preset needs 'strides' (one per level)")
    n = len(FIELDS["strides"]("strides", data["strides"]))
    if kind == "grid" and "sizes" not in data:
        raise S.FieldError("sizes", "a grid anchor preset needs 'sizes' (a list of sizes per level)")
    if kind == "ssd" and "scales" not in data:
        raise S.FieldError("scales", "an ssd anchor preset needs 'scales' (levels + 1 relative scales)")
    stem = Path(where).stem[:200] if where else "custom"
    defaults = {
        "name": stem or "custom",
        "sizes": [],
        "aspect_ratios": [[0.5, 1.0, 2.0]] if kind == "grid" else [[2.0]],
        "level_names": [f"L{i}" for i in range(n)],
        "pos_iou": 0.5,
        "allow_low_quality": kind == "grid",
        "scales": [],
        "clip": True,
        "matcher": "ssd" if kind == "ssd" else "torchvision",
        "stride_rule": "fixed",
        "anchor_rule": "torchvision",
        "box_rule": "torchvision",
        "center_offset": 0.0,
        "assigner": "fcos" if kind == "point" else "max_iou",
        "topk": 9,
        "center_radius": 1.5,
        "regress_ranges": [],
    }
    raw = {k: data.get(k, defaults.get(k)) for k in FIELDS if k not in ("neg_iou", "kind")}
    raw["kind"] = kind
    raw["neg_iou"] = data.get("neg_iou", raw["pos_iou"] if kind == "ssd" else 0.4)
    raw["sizes"] = _per_level(raw["sizes"], one_level=False) if kind == "grid" else []
    raw["aspect_ratios"] = _per_level(raw["aspect_ratios"], one_level=True)
    if isinstance(raw["aspect_ratios"], list) and len(raw["aspect_ratios"]) == 1 and n > 1:
        raw["aspect_ratios"] = raw["aspect_ratios"] * n
    if kind != "ssd":
        raw["scales"] = []
    values = {k: FIELDS[k](k, v) for k, v in raw.items()}
    return AnchorPreset(**values, resize=_resize_fields(data.get("resize", {}), kind))


def _resize_fields(rz, kind: str) -> ResizePolicy:
    """The ``[resize]`` table as a :class:`ResizePolicy`, every key checked by :data:`RESIZE_FIELDS`."""
    if not isinstance(rz, dict):
        raise S.FieldError("resize", f"must be a table ([resize]), got {S.describe(rz)}")
    unknown = set(rz) - _RESIZE_KEYS
    if unknown:
        raise S.FieldError(
            "resize",
            f"unknown key(s) in [resize]: {', '.join(sorted(map(str, unknown)))} "
            f"(known: {', '.join(sorted(_RESIZE_KEYS))})",
        )
    defaults = {
        "min_size": 800,
        "max_size": 1333,
        "fixed": None,
        "size_divisible": 1 if kind == "ssd" else 32,
        "rule": "torchvision",
    }
    return ResizePolicy(**{k: RESIZE_FIELDS[k](f"resize.{k}", rz.get(k, d)) for k, d in defaults.items()})


def get_preset(
    name_or_path: "str | AnchorPreset", pos_iou: float | None = None, neg_iou: float | None = None
) -> AnchorPreset:
    """Resolve a preset by built-in name, TOML path, or pass an :class:`AnchorPreset` through.

    ``pos_iou`` / ``neg_iou`` override the preset's thresholds (the CLI's ``--pos-iou`` /
    ``--neg-iou``). Unknown names, unreadable or malformed TOML, and inconsistent thresholds
    raise :class:`InputError`.
    """
    if isinstance(name_or_path, AnchorPreset):
        preset = name_or_path
        where = None
    elif isinstance(name_or_path, str) and name_or_path in PRESETS:
        preset = PRESETS[name_or_path]
        where = None
    elif isinstance(name_or_path, str) and name_or_path.strip().lower() in _kinds().preset_names():
        raise yolov5_refused(f"preset {name_or_path.strip().lower()!r}")
    else:
        path = Path(str(name_or_path))
        if path.suffix.lower() != ".toml" or not path.exists():
            names = (*PRESETS, *_kinds().preset_names())  # presets of their own kinds (anchors/kinds.py), same option
            raise InputError(
                f"unknown anchor preset {str(name_or_path)!r}{did_you_mean(name_or_path, names)}: use one of "
                f"{', '.join(names)} or a path to a .toml file",
                record="--anchors",
            )
        where = str(path)
        preset = replace(preset_from_dict(_load_toml(path), where), source=where)
    changes = {}
    if pos_iou is not None:
        changes["pos_iou"] = float(pos_iou)
    if neg_iou is not None:
        changes["neg_iou"] = float(neg_iou)
    if changes:
        if (
            preset.kind == "ssd"
            and "pos_iou" in changes
            and "neg_iou" not in changes
            and preset.neg_iou == preset.pos_iou
        ):
            changes["neg_iou"] = changes["pos_iou"]  # SSD has one threshold
        preset = replace(preset, **changes)
        for k, v in changes.items():
            if not (0.0 <= v <= 1.0) or math.isnan(v):
                raise InputError(f"--{k.replace('_', '-')} must be in [0, 1], got {v}")
        if preset.neg_iou > preset.pos_iou:
            raise InputError(f"--neg-iou ({preset.neg_iou}) must not exceed --pos-iou ({preset.pos_iou})")
    return validate_preset(preset, where)
