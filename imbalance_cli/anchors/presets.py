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
        name="retinanet", sizes=tuple(tuple(float(v) for v in s) for s in sizes),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5, strides=(8, 16, 32, 64, 128),
        level_names=("P3", "P4", "P5", "P6", "P7"), resize=ResizePolicy(800, 1333, None, 32),
        pos_iou=0.5, neg_iou=0.4, allow_low_quality=True, kind="grid", matcher="torchvision", stride_rule="model",
    )


def _rpn() -> AnchorPreset:
    return AnchorPreset(
        name="rpn", sizes=((32.0,), (64.0,), (128.0,), (256.0,), (512.0,)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5, strides=(4, 8, 16, 32, 64),
        level_names=("P2", "P3", "P4", "P5", "P6"), resize=ResizePolicy(800, 1333, None, 32),
        pos_iou=0.7, neg_iou=0.3, allow_low_quality=True, kind="grid", matcher="torchvision", stride_rule="model",
    )


def _ssd300() -> AnchorPreset:
    scales = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)
    return AnchorPreset(
        name="ssd300", sizes=tuple((s * 300.0,) for s in scales[:-1]),
        aspect_ratios=((2.0,), (2.0, 3.0), (2.0, 3.0), (2.0, 3.0), (2.0,), (2.0,)),
        strides=(8, 16, 32, 64, 100, 300),
        level_names=("conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2"),
        resize=ResizePolicy(300, 300, (300, 300), 1), pos_iou=0.5, neg_iou=0.5,
        allow_low_quality=False, kind="ssd", scales=scales, clip=True, matcher="ssd",
    )


_P3_P7 = ("P3", "P4", "P5", "P6", "P7")
_STRIDES = (8, 16, 32, 64, 128)


def _mmdet_octave_sizes(octave_base_scale: float, scales_per_octave: int) -> tuple[tuple[float, ...], ...]:
    """mmdetection ``AnchorGenerator``: base size = stride, scales ``octave_base_scale * 2^(i / n)``."""
    return tuple(tuple(float(s) * (2 ** (i / scales_per_octave) * octave_base_scale) for i in range(scales_per_octave))
                 for s in _STRIDES)


def _mmdet_retinanet() -> AnchorPreset:
    return AnchorPreset(
        name="mmdet-retinanet", sizes=_mmdet_octave_sizes(4, 3), aspect_ratios=((0.5, 1.0, 2.0),) * 5,
        strides=_STRIDES, level_names=_P3_P7, resize=ResizePolicy(800, 1333, None, 32, "mmcv"),
        pos_iou=0.5, neg_iou=0.4, allow_low_quality=True, kind="grid", matcher="mmdet", stride_rule="fixed",
        anchor_rule="mmdet", box_rule="mmdet", center_offset=0.0,
    )


def _detectron2_retinanet() -> AnchorPreset:
    sizes = tuple((x, x * 2 ** (1.0 / 3), x * 2 ** (2.0 / 3)) for x in (32, 64, 128, 256, 512))
    return AnchorPreset(
        name="detectron2-retinanet", sizes=tuple(tuple(float(v) for v in s) for s in sizes),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5, strides=_STRIDES, level_names=_P3_P7,
        resize=ResizePolicy(800, 1333, None, 32, "detectron2"), pos_iou=0.5, neg_iou=0.4, allow_low_quality=True,
        kind="grid", matcher="torchvision", stride_rule="fixed", anchor_rule="detectron2", box_rule="detectron2",
        center_offset=0.0,
    )


def _atss() -> AnchorPreset:
    return AnchorPreset(
        name="atss", sizes=_mmdet_octave_sizes(8, 1), aspect_ratios=((1.0,),) * 5, strides=_STRIDES,
        level_names=_P3_P7, resize=ResizePolicy(800, 1333, None, 32, "mmcv"), pos_iou=0.5, neg_iou=0.4,
        allow_low_quality=False, kind="grid", matcher="mmdet", stride_rule="fixed", anchor_rule="mmdet",
        box_rule="mmdet", assigner="atss", topk=9,
    )


def _fcos() -> AnchorPreset:
    return AnchorPreset(
        name="fcos", sizes=(), aspect_ratios=((1.0,),) * 5, strides=_STRIDES, level_names=_P3_P7,
        resize=ResizePolicy(800, 1333, None, 32, "mmcv"), pos_iou=0.5, neg_iou=0.4, allow_low_quality=False,
        kind="point", matcher="mmdet", stride_rule="fixed", anchor_rule="mmdet", box_rule="mmdet",
        center_offset=0.5, assigner="fcos", center_radius=1.5,
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


def _registered_assigners() -> set:
    """Names registered in :data:`imbalance_cli.anchors.rules.ASSIGNERS` (rules imports this module, hence lazily)."""
    from imbalance_cli.anchors import rules

    return set(rules.ASSIGNERS)


def validate_preset(preset: AnchorPreset, where: str | None = None) -> AnchorPreset:
    """Check a preset's consistency and limits; raise :class:`InputError` naming ``where`` on failure.

    Limits (stated in the README): 1..16 levels; strides integers in [1, 4096]; anchor sizes,
    ``resize.min_size`` / ``max_size`` / ``fixed`` sides finite and in (0, 100000]; ``size_divisible``
    in [1, 4096]; at most 1000 anchors per grid position; at most 50 million anchors per image at
    the largest padded size the resize can produce. All checked before anything is allocated.
    """

    def bad(msg: str):
        raise InputError(msg, path=where)

    def finite_pos(v, hi) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 < v <= hi

    n = len(preset.strides)
    if n == 0:
        bad("anchor preset needs at least one level (strides)")
    if n > MAX_LEVELS:
        bad(f"anchor preset has {n} levels; at most {MAX_LEVELS} are allowed")
    if preset.kind not in ("grid", "ssd", "point"):
        bad(f"anchor preset kind must be 'grid', 'ssd' or 'point', got {preset.kind!r}")
    if any((not isinstance(s, int)) or isinstance(s, bool) or not (1 <= s <= MAX_STRIDE) for s in preset.strides):
        bad(f"strides must be integers in [1, {MAX_STRIDE}], got {list(preset.strides)}")
    if len(preset.aspect_ratios) != n:
        bad(f"aspect_ratios has {len(preset.aspect_ratios)} levels but strides has {n}")
    if len(preset.level_names) != n:
        bad(f"level_names has {len(preset.level_names)} entries but strides has {n}")
    for ratios in preset.aspect_ratios:
        if len(ratios) == 0 and preset.kind == "grid":
            bad("every level needs at least one aspect ratio")
        if any(not finite_pos(r, 1e4) or r < 1e-4 for r in ratios):
            bad(f"aspect ratios must be numbers in [1e-4, 1e4], got {list(ratios)}")
    if preset.kind == "grid":
        if len(preset.sizes) != n:
            bad(f"sizes has {len(preset.sizes)} levels but strides has {n}")
        for s in preset.sizes:
            if len(s) == 0 or any(not finite_pos(v, MAX_SIDE) for v in s):
                bad(f"every level needs anchor sizes in (0, {MAX_SIDE}], got {list(s)}")
    elif preset.kind == "ssd":
        if len(preset.scales) != n + 1:
            bad(f"an ssd preset needs {n + 1} scales (levels + 1), got {len(preset.scales)}")
        if any(not finite_pos(v, 100.0) for v in preset.scales):
            bad(f"scales must be positive numbers up to 100, got {list(preset.scales)}")
        if preset.resize.fixed is None:
            bad("an ssd preset needs a fixed resize ([resize] fixed = [height, width])")
    for lvl in range(n):
        k = preset.anchors_per_location(lvl)
        if k > MAX_PER_LOCATION:
            bad(f"level {lvl} has {k} anchors per grid position; at most {MAX_PER_LOCATION} are allowed")
    if not (0.0 <= preset.neg_iou <= preset.pos_iou <= 1.0):
        bad(f"thresholds must satisfy 0 <= neg_iou <= pos_iou <= 1, got pos {preset.pos_iou}, neg {preset.neg_iou}")
    if preset.pos_iou <= 0:
        bad(f"pos_iou must be > 0, got {preset.pos_iou}")
    if preset.matcher not in MATCHER_SEMANTICS:
        bad(f"matcher must be one of {', '.join(MATCHER_SEMANTICS)}, got {preset.matcher!r}")
    if preset.stride_rule not in STRIDE_RULES:
        bad(f"stride_rule must be one of {', '.join(STRIDE_RULES)}, got {preset.stride_rule!r}")
    for name in ("anchor_rule", "box_rule"):
        if getattr(preset, name) not in FRAMEWORK_RULES:
            bad(f"{name} must be one of {', '.join(FRAMEWORK_RULES)}, got {getattr(preset, name)!r}")
    if not (math.isfinite(preset.center_offset) and 0.0 <= preset.center_offset <= 1.0):
        bad(f"center_offset must be in [0, 1], got {preset.center_offset}")
    if preset.assigner not in ASSIGNER_NAMES and preset.assigner not in _registered_assigners():
        bad(f"assigner must be one of {', '.join(ASSIGNER_NAMES)} (or one registered in anchors.rules.ASSIGNERS), "
            f"got {preset.assigner!r}")
    if preset.kind == "point" and preset.assigner != "fcos":
        bad("a point preset (kind = 'point') needs assigner = 'fcos' (points have no IoU)")
    if preset.assigner == "fcos":
        if preset.kind != "point":
            bad("assigner 'fcos' needs kind = 'point'")
        if len(preset.regress_ranges) != n:
            bad(f"regress_ranges has {len(preset.regress_ranges)} levels but strides has {n}")
        for rr in preset.regress_ranges:
            if len(rr) != 2 or any(math.isnan(v) for v in rr) or not rr[0] < rr[1]:
                bad(f"each regress range must be [low, high] with low < high, got {list(rr)}")
        if not (math.isfinite(preset.center_radius) and 0.0 <= preset.center_radius <= 100.0):
            bad(f"center_radius must be in [0, 100], got {preset.center_radius}")
    if preset.assigner == "atss":
        if preset.kind != "grid":
            bad("assigner 'atss' needs a grid preset")
        if not (isinstance(preset.topk, int) and 1 <= preset.topk <= 1000):
            bad(f"topk must be an integer in [1, 1000], got {preset.topk}")
    r = preset.resize
    if r.rule not in RESIZE_RULES:
        bad(f"resize.rule must be one of {', '.join(RESIZE_RULES)}, got {r.rule!r}")
    if r.fixed is not None and (len(r.fixed) != 2 or any(not finite_pos(v, MAX_SIDE) for v in r.fixed)):
        bad(f"resize.fixed must be [height, width], integers in [1, {MAX_SIDE}], got {list(r.fixed)}")
    for name in ("min_size", "max_size"):
        v = getattr(r, name)
        if v is not None and not finite_pos(v, MAX_SIDE):
            bad(f"resize.{name} must be in [1, {MAX_SIDE}], got {v}")
    if r.rule == "detectron2" and r.fixed is None and r.min_size is None:
        bad("resize.rule 'detectron2' needs resize.min_size (the short edge length)")
    if not (isinstance(r.size_divisible, int) and 1 <= r.size_divisible <= MAX_STRIDE):
        bad(f"resize.size_divisible must be an integer in [1, {MAX_STRIDE}], got {r.size_divisible}")
    side = _largest_padded_side(r)
    if side is not None:
        worst = sum((-(-side // s)) ** 2 * preset.anchors_per_location(lvl) for lvl, s in enumerate(preset.strides))
        if worst > MAX_ANCHORS_PER_IMAGE:
            bad(f"this preset lays up to {worst:,} anchors on one {side} x {side} image; at most "
                f"{MAX_ANCHORS_PER_IMAGE:,} are allowed (raise the strides or lower the resize)")
    return preset


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
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise InputError(f"cannot read anchor preset: {e.strerror or e}", path=str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML: {e}", path=str(path)) from None


_KNOWN_KEYS = {"name", "kind", "strides", "sizes", "aspect_ratios", "level_names", "pos_iou", "neg_iou",
               "allow_low_quality", "resize", "scales", "clip", "matcher", "stride_rule", "anchor_rule", "box_rule",
               "center_offset", "assigner", "topk", "center_radius", "regress_ranges"}
_RESIZE_KEYS = {"min_size", "max_size", "fixed", "size_divisible", "rule"}


def preset_from_dict(data: dict, where: str | None = None) -> AnchorPreset:
    """Build an :class:`AnchorPreset` from a TOML-shaped dict (see module docstring); InputError on bad data."""

    def bad(msg: str):
        raise InputError(msg, path=where)

    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        bad(f"unknown key(s) in anchor preset: {', '.join(sorted(unknown))} (known: {', '.join(sorted(_KNOWN_KEYS))})")
    kind = data.get("kind", "grid")
    if "strides" not in data:
        bad("anchor preset needs 'strides' (one per level)")
    try:
        if not isinstance(data["strides"], (list, tuple)) or any(
                isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) for s in data["strides"]):
            bad(f"strides must be a list of finite integers, got {data['strides']}")
        strides = tuple(int(s) for s in data["strides"])
        if any(float(s) != int(s) for s in data["strides"]):
            bad(f"strides must be integers, got {data['strides']}")
        n = len(strides)
        ratios = data.get("aspect_ratios", [[0.5, 1.0, 2.0]] if kind == "grid" else [[2.0]])
        if not isinstance(ratios, (list, tuple)):
            bad("aspect_ratios must be a list of numbers or a list of lists (one per level)")
        if all(not isinstance(r, (list, tuple)) for r in ratios):
            ratios = [list(ratios)]  # one list for every level
        ratios = [list(r) if isinstance(r, (list, tuple)) else [r] for r in ratios]
        if len(ratios) == 1 and n > 1:
            ratios = ratios * n
        aspect_ratios = tuple(tuple(float(r) for r in level) for level in ratios)
        if kind == "grid":
            if "sizes" not in data:
                bad("a grid anchor preset needs 'sizes' (a list of sizes per level)")
            sizes = tuple(tuple(float(v) for v in (lvl if isinstance(lvl, (list, tuple)) else [lvl])) for lvl in data["sizes"])
            scales: tuple[float, ...] = ()
        elif kind == "ssd":
            if "scales" not in data:
                bad("an ssd anchor preset needs 'scales' (levels + 1 relative scales)")
            scales = tuple(float(v) for v in data["scales"])
            sizes = ()
        elif kind == "point":
            scales, sizes = (), ()
        else:
            bad(f"anchor preset kind must be 'grid', 'ssd' or 'point', got {kind!r}")
        level_names = tuple(str(x) for x in data.get("level_names", [f"L{i}" for i in range(n)]))
        rz = data.get("resize", {})
        if not isinstance(rz, dict):
            bad("'resize' must be a table ([resize])")
        unknown_rz = set(rz) - _RESIZE_KEYS
        if unknown_rz:
            bad(f"unknown key(s) in [resize]: {', '.join(sorted(unknown_rz))}")
        fixed = rz.get("fixed")
        resize = ResizePolicy(
            min_size=None if rz.get("min_size", 800) is None else int(rz.get("min_size", 800)),
            max_size=None if rz.get("max_size", 1333) is None else int(rz.get("max_size", 1333)),
            fixed=None if fixed is None else (int(fixed[0]), int(fixed[1])),
            size_divisible=int(rz.get("size_divisible", 1 if kind == "ssd" else 32)),
            rule=str(rz.get("rule", "torchvision")),
        )
        default_matcher = "ssd" if kind == "ssd" else "torchvision"
        preset = AnchorPreset(
            name=str(data.get("name", Path(where).stem if where else "custom")), sizes=sizes,
            aspect_ratios=aspect_ratios, strides=strides, level_names=level_names, resize=resize,
            pos_iou=float(data.get("pos_iou", 0.5)), neg_iou=float(data.get("neg_iou", data.get("pos_iou", 0.5) if kind == "ssd" else 0.4)),
            allow_low_quality=bool(data.get("allow_low_quality", kind == "grid")), kind=kind, scales=scales,
            clip=bool(data.get("clip", True)), matcher=str(data.get("matcher", default_matcher)),
            stride_rule=str(data.get("stride_rule", "fixed")), anchor_rule=str(data.get("anchor_rule", "torchvision")),
            box_rule=str(data.get("box_rule", "torchvision")), center_offset=float(data.get("center_offset", 0.0)),
            assigner=str(data.get("assigner", "fcos" if kind == "point" else "max_iou")),
            topk=int(data.get("topk", 9)), center_radius=float(data.get("center_radius", 1.5)),
            regress_ranges=tuple((float(a), float(b)) for a, b in data.get("regress_ranges", [])),
        )
    except InputError:
        raise
    except (TypeError, ValueError, IndexError, KeyError, OverflowError) as e:
        bad(f"malformed anchor preset: {e}")
    return validate_preset(preset, where)


def get_preset(name_or_path: "str | AnchorPreset", pos_iou: float | None = None, neg_iou: float | None = None) -> AnchorPreset:
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
    else:
        path = Path(str(name_or_path))
        if path.suffix.lower() != ".toml" or not path.exists():
            names = (*PRESETS, "yolov5")  # yolov5 is its own kind (anchors/yolov5.py), offered by the same option
            raise InputError(
                f"unknown anchor preset {str(name_or_path)!r}{did_you_mean(name_or_path, names)}: use one of "
                f"{', '.join(names)} or a path to a .toml file", record="--anchors")
        where = str(path)
        preset = preset_from_dict(_load_toml(path), where)
    changes = {}
    if pos_iou is not None:
        changes["pos_iou"] = float(pos_iou)
    if neg_iou is not None:
        changes["neg_iou"] = float(neg_iou)
    if changes:
        if preset.kind == "ssd" and "pos_iou" in changes and "neg_iou" not in changes and preset.neg_iou == preset.pos_iou:
            changes["neg_iou"] = changes["pos_iou"]  # SSD has one threshold
        preset = replace(preset, **changes)
        for k, v in changes.items():
            if not (0.0 <= v <= 1.0) or math.isnan(v):
                raise InputError(f"--{k.replace('_', '-')} must be in [0, 1], got {v}")
        if preset.neg_iou > preset.pos_iou:
            raise InputError(f"--neg-iou ({preset.neg_iou}) must not exceed --pos-iou ({preset.pos_iou})")
    return validate_preset(preset, where)
