"""Anchor presets: plain dataclasses, a registry dict, and user presets from TOML.

Built-in presets (:data:`PRESETS`) reproduce torchvision's detectors:

* ``retinanet`` -- ``retinanet_resnet50_fpn``: resize 800/1333, pad to a multiple of 32,
  levels P3..P7 with strides 8..128, sizes ``(x, int(x 2^(1/3)), int(x 2^(2/3)))`` for
  x in 32..512, aspect ratios (h/w) 0.5/1/2, ``Matcher(0.5, 0.4, allow_low_quality_matches=True)``.
* ``rpn`` -- the RPN of ``fasterrcnn_resnet50_fpn``: P2..P6, strides 4..64, one size per
  level 32..512, ratios 0.5/1/2, ``Matcher(0.7, 0.3, allow_low_quality_matches=True)``.
* ``ssd300`` -- ``ssd300_vgg16``: fixed 300x300 resize, ``DefaultBoxGenerator`` with aspect
  ratios [[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales 0.07..1.05, steps 8, 16, 32, 64,
  100, 300 (feature maps 38, 19, 10, 5, 3, 1), clipped width/height, 8732 default boxes;
  ``SSDMatcher(0.5)`` (each box's single best default box is forced to it).

Strides are fixed per level (8..128 for RetinaNet). torchvision's ``AnchorGenerator``
derives a level's stride as ``padded_size // grid_size`` instead, which differs for the
coarsest levels when the padded size is not a multiple of the stride (e.g. P7 of an
800-pixel side: 800 // 7 = 114, not 128); we follow the fixed strides of the FPN design.

A user preset is a TOML file mapping onto :class:`AnchorPreset`::

    name = "small"
    kind = "grid"                       # or "ssd"
    strides = [8, 16, 32]
    sizes = [[32, 40, 50], [64, 80, 101], [128, 161, 203]]
    aspect_ratios = [[0.5, 1.0, 2.0]]   # one list for every level, or one per level
    level_names = ["P3", "P4", "P5"]    # optional
    pos_iou = 0.5
    neg_iou = 0.4
    allow_low_quality = true
    matcher = "torchvision"             # default matcher semantics: torchvision | mmdet | ssd
    [resize]                            # optional; defaults 800 / 1333 / 32
    min_size = 800
    max_size = 1333
    size_divisible = 32
    # fixed = [300, 300]                # (height, width): resize every image to exactly this

For ``kind = "ssd"`` give ``scales`` (one more than levels) instead of ``sizes``; the
``aspect_ratios`` are then SSD's extra ratios per level (1 and the intermediate scale are
always added), and ``clip`` (default true) clamps relative widths/heights to [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from imbalance_cli.errors import InputError

MATCHER_SEMANTICS = ("torchvision", "mmdet", "ssd")


@dataclass(frozen=True)
class ResizePolicy:
    """How an image is resized before anchors are laid on it (torchvision ``GeneralizedRCNNTransform``).

    ``fixed`` = (height, width) resizes every image to exactly that size. Otherwise the scale is
    ``min(min_size / min(H, W), max_size / max(H, W))`` (a missing bound is dropped; both missing:
    no resize), the resized size ``floor(H s) x floor(W s)``, then padded up to a multiple of
    ``size_divisible``.
    """

    min_size: int | None = 800
    max_size: int | None = 1333
    fixed: tuple[int, int] | None = None
    size_divisible: int = 32


@dataclass(frozen=True)
class AnchorPreset:
    """An anchor layout plus its labelling thresholds.

    ``sizes[l]`` are the anchor sizes (square-root areas, pixels of the resized image) of level
    ``l``; ``aspect_ratios[l]`` the ratios h/w. Base anchors are built ratio-major and rounded like
    torchvision's ``AnchorGenerator``; anchor centres lie at ``(j * stride, i * stride)``.
    For ``kind == "ssd"`` the anchors are torchvision's ``DefaultBoxGenerator`` boxes built from
    ``scales`` (relative to the image) and ``aspect_ratios`` (the extra ratios per level), with
    ``strides`` as the steps.
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

    @property
    def num_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.strides)

    def anchors_per_location(self, level: int) -> int:
        """Anchors at each grid position of ``level``."""
        if self.kind == "ssd":
            return 2 + 2 * len(self.aspect_ratios[level])
        return len(self.sizes[level]) * len(self.aspect_ratios[level])


def _retinanet() -> AnchorPreset:
    sizes = tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in (32, 64, 128, 256, 512))
    return AnchorPreset(
        name="retinanet", sizes=tuple(tuple(float(v) for v in s) for s in sizes),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5, strides=(8, 16, 32, 64, 128),
        level_names=("P3", "P4", "P5", "P6", "P7"), resize=ResizePolicy(800, 1333, None, 32),
        pos_iou=0.5, neg_iou=0.4, allow_low_quality=True, kind="grid", matcher="torchvision",
    )


def _rpn() -> AnchorPreset:
    return AnchorPreset(
        name="rpn", sizes=((32.0,), (64.0,), (128.0,), (256.0,), (512.0,)),
        aspect_ratios=((0.5, 1.0, 2.0),) * 5, strides=(4, 8, 16, 32, 64),
        level_names=("P2", "P3", "P4", "P5", "P6"), resize=ResizePolicy(800, 1333, None, 32),
        pos_iou=0.7, neg_iou=0.3, allow_low_quality=True, kind="grid", matcher="torchvision",
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


#: Built-in presets by name (a plain registry dict).
PRESETS: dict[str, AnchorPreset] = {p.name: p for p in (_retinanet(), _rpn(), _ssd300())}


def validate_preset(preset: AnchorPreset, where: str | None = None) -> AnchorPreset:
    """Check a preset's internal consistency; raise :class:`InputError` naming ``where`` on failure."""

    def bad(msg: str):
        raise InputError(msg, path=where)

    n = len(preset.strides)
    if n == 0:
        bad("anchor preset needs at least one level (strides)")
    if preset.kind not in ("grid", "ssd"):
        bad(f"anchor preset kind must be 'grid' or 'ssd', got {preset.kind!r}")
    if any((not isinstance(s, int)) or s <= 0 for s in preset.strides):
        bad(f"strides must be positive integers, got {list(preset.strides)}")
    if len(preset.aspect_ratios) != n:
        bad(f"aspect_ratios has {len(preset.aspect_ratios)} levels but strides has {n}")
    if len(preset.level_names) != n:
        bad(f"level_names has {len(preset.level_names)} entries but strides has {n}")
    for ratios in preset.aspect_ratios:
        if len(ratios) == 0 and preset.kind == "grid":
            bad("every level needs at least one aspect ratio")
        if any(not (math.isfinite(r) and r > 0) for r in ratios):
            bad(f"aspect ratios must be positive numbers, got {list(ratios)}")
    if preset.kind == "grid":
        if len(preset.sizes) != n:
            bad(f"sizes has {len(preset.sizes)} levels but strides has {n}")
        for s in preset.sizes:
            if len(s) == 0 or any(not (math.isfinite(v) and v > 0) for v in s):
                bad(f"every level needs positive anchor sizes, got {list(s)}")
    else:
        if len(preset.scales) != n + 1:
            bad(f"an ssd preset needs {n + 1} scales (levels + 1), got {len(preset.scales)}")
        if any(not (math.isfinite(v) and v > 0) for v in preset.scales):
            bad(f"scales must be positive numbers, got {list(preset.scales)}")
        if preset.resize.fixed is None:
            bad("an ssd preset needs a fixed resize ([resize] fixed = [height, width])")
    if not (0.0 <= preset.neg_iou <= preset.pos_iou <= 1.0):
        bad(f"thresholds must satisfy 0 <= neg_iou <= pos_iou <= 1, got pos {preset.pos_iou}, neg {preset.neg_iou}")
    if preset.pos_iou <= 0:
        bad(f"pos_iou must be > 0, got {preset.pos_iou}")
    if preset.matcher not in MATCHER_SEMANTICS:
        bad(f"matcher must be one of {', '.join(MATCHER_SEMANTICS)}, got {preset.matcher!r}")
    r = preset.resize
    if r.fixed is not None and (len(r.fixed) != 2 or any(int(v) <= 0 for v in r.fixed)):
        bad(f"resize.fixed must be [height, width] of positive integers, got {r.fixed}")
    for name in ("min_size", "max_size"):
        v = getattr(r, name)
        if v is not None and v <= 0:
            bad(f"resize.{name} must be positive, got {v}")
    if r.size_divisible < 1:
        bad(f"resize.size_divisible must be >= 1, got {r.size_divisible}")
    return preset


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
               "allow_low_quality", "resize", "scales", "clip", "matcher"}
_RESIZE_KEYS = {"min_size", "max_size", "fixed", "size_divisible"}


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
        else:
            bad(f"anchor preset kind must be 'grid' or 'ssd', got {kind!r}")
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
            size_divisible=int(rz.get("size_divisible", 32 if kind == "grid" else 1)),
        )
        default_matcher = "ssd" if kind == "ssd" else "torchvision"
        preset = AnchorPreset(
            name=str(data.get("name", Path(where).stem if where else "custom")), sizes=sizes,
            aspect_ratios=aspect_ratios, strides=strides, level_names=level_names, resize=resize,
            pos_iou=float(data.get("pos_iou", 0.5)), neg_iou=float(data.get("neg_iou", data.get("pos_iou", 0.5) if kind == "ssd" else 0.4)),
            allow_low_quality=bool(data.get("allow_low_quality", kind == "grid")), kind=kind, scales=scales,
            clip=bool(data.get("clip", True)), matcher=str(data.get("matcher", default_matcher)),
        )
    except InputError:
        raise
    except (TypeError, ValueError, IndexError, KeyError) as e:
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
            raise InputError(
                f"unknown anchor preset {str(name_or_path)!r}: use one of {', '.join(PRESETS)} or a path to a .toml file",
                record="--anchors")
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
