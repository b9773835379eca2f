"""The fields of a yolov5 preset (TOML ``kind = "yolov5"`` or a :class:`~imbalance_cli.anchors.yolov5.YoloV5Preset`),
their exact types and stated ranges, the rules between them, and the preset built from a TOML file.

Limits (stated in the README, checked before anything is allocated; one line naming the file and the field):
1..16 levels (:data:`~imbalance_cli.anchors.presets.MAX_LEVELS`), 1..1000 anchors per level; anchor widths and
heights finite numbers in [1, 100000] pixels of the letterboxed input (below 1 pixel an anchor is a line: a
float32 ratio test divides by it); strides integers in [1, 4096] dividing ``pad_stride`` (an integer in
[1, 4096]); ``img_size`` an integer in [1, 100000], a multiple of ``pad_stride`` (YOLOv5's ``check_img_size``
rounds it up to one); ``anchor_t`` in (1, 1000]; ``offset_g`` in [0, 1]; at most 50 million anchors on the
largest letterboxed image (``img_size`` square).
"""

from __future__ import annotations

from typing import Callable

from imbalance_cli.anchors import schema as S
from imbalance_cli.anchors.presets import MAX_ANCHORS_PER_IMAGE, MAX_LEVELS, MAX_PER_LOCATION, MAX_SIDE, MAX_STRIDE
from imbalance_cli.anchors.tomlfile import read_toml
from imbalance_cli.anchors.yolov5 import YOLOV5, YoloV5Preset
from imbalance_cli.errors import InputError

#: Smallest anchor width or height (pixels of the letterboxed input).
MIN_ANCHOR_SIDE = 1.0
#: Largest ``anchor_t`` (YOLOv5's hyperparameter files use 4; its evolution bounds are 2..8).
MAX_ANCHOR_T = 1000.0


def _anchor(field: str, v) -> tuple[float, float]:
    return S.each(field, S.array(field, v, 2, 2), lambda f, x: S.number(f, x, MIN_ANCHOR_SIDE, MAX_SIDE))


#: The TOML keys of a yolov5 preset (the fields :func:`imbalance_cli.anchors.tomlwriter.yolov5_toml` writes) and
#: their checks.
TOML_FIELDS: dict[str, Callable] = {
    "name": S.string,
    "kind": lambda f, v: S.choice(f, v, ("yolov5",)),
    "anchors": lambda f, v: S.each(
        f, S.array(f, v, 1, MAX_LEVELS), lambda g, lv: S.each(g, S.array(g, lv, 1, MAX_PER_LOCATION), _anchor)
    ),
    "strides": lambda f, v: S.each(f, S.array(f, v, 1, MAX_LEVELS), lambda g, s: S.integer(g, s, 1, MAX_STRIDE)),
    "level_names": lambda f, v: S.each(f, S.array(f, v, 1, MAX_LEVELS), S.string),
    "img_size": lambda f, v: S.integer(f, v, 1, MAX_SIDE),
    "pad_stride": lambda f, v: S.integer(f, v, 1, MAX_STRIDE),
    "anchor_t": lambda f, v: S.number(f, v, 1.0, MAX_ANCHOR_T, lo_open=True),
    "offset_g": lambda f, v: S.number(f, v, 0.0, 1.0),
}
#: Fields of the dataclass a TOML file does not set (checked for presets built in Python).
OTHER_FIELDS: dict[str, Callable] = {
    "assigner": lambda f, v: S.choice(f, v, ("yolov5",)),
    "matcher": lambda f, v: S.choice(f, v, ("yolov5",)),
    "allow_low_quality": S.boolean,
    "bpr_good": lambda f, v: S.number(f, v, 0.0, 1.0),
}


def _rules(p: YoloV5Preset) -> None:
    """The rules between fields: one entry per level, strides dividing ``pad_stride``, ``img_size`` a multiple of
    it, and the anchor count on the largest letterboxed image."""
    n = len(p.strides)
    for name in ("anchors", "level_names"):
        if len(getattr(p, name)) != n:
            raise S.FieldError(name, f"{name} has {len(getattr(p, name))} levels but strides has {n}")
    for lv, s in enumerate(p.strides):
        if p.pad_stride % s:
            raise S.FieldError(
                f"strides[{lv}]",
                f"stride {s} does not divide pad_stride {p.pad_stride} (the "
                "letterbox pads to a multiple of pad_stride; every level's grid must tile it)",
            )
    if p.img_size % p.pad_stride:
        raise S.FieldError(
            "img_size",
            f"img_size {p.img_size} is not a multiple of pad_stride {p.pad_stride} "
            "(YOLOv5's check_img_size rounds it up to one)",
        )
    worst = sum((p.img_size // s) ** 2 * len(a) for s, a in zip(p.strides, p.anchors))
    if worst > MAX_ANCHORS_PER_IMAGE:
        raise S.FieldError(
            "strides",
            f"this preset lays {worst:,} anchors on one {p.img_size} x {p.img_size} "
            f"letterboxed image; at most {MAX_ANCHORS_PER_IMAGE:,} are allowed (raise the strides or "
            "lower img_size)",
        )


def validate_yolov5(preset: YoloV5Preset, where: str | None = None) -> YoloV5Preset:
    """Check every field of a yolov5 preset (types, ranges) and the rules between them; InputError naming
    ``where`` and the field otherwise."""
    if not isinstance(preset, YoloV5Preset):
        raise InputError(f"not a yolov5 preset: {type(preset).__name__}", path=where)
    try:
        for name, check in {**TOML_FIELDS, **OTHER_FIELDS}.items():
            check(name, getattr(preset, name))
        _rules(preset)
    except S.FieldError as e:
        raise S.as_input_error(e, where) from None
    return preset


def yolov5_from_dict(data: dict, where: str | None = None) -> YoloV5Preset:
    """A :class:`YoloV5Preset` from a TOML-shaped dict: ``anchors`` required, the other keys default to
    :data:`~imbalance_cli.anchors.yolov5.YOLOV5`'s; every value checked where it enters."""
    if not isinstance(data, dict):
        raise InputError(f"a yolov5 preset must be a table of keys, got {S.describe(data)}", path=where)
    unknown = sorted(map(str, set(data) - set(TOML_FIELDS)))
    if unknown:
        raise InputError(
            f"unknown key {unknown[0]!r} in a yolov5 preset (known: {', '.join(sorted(TOML_FIELDS))})", path=where
        )
    if data.get("kind") != "yolov5":
        raise InputError('a yolov5 preset TOML needs kind = "yolov5"', path=where, record="field 'kind'")
    if "anchors" not in data:
        raise InputError(
            "a yolov5 preset TOML needs 'anchors' ([[w, h], ...] per level)", path=where, record="field 'anchors'"
        )
    defaults = {
        "name": "yolov5-custom",
        "strides": list(YOLOV5.strides),
        "level_names": list(YOLOV5.level_names),
        "img_size": YOLOV5.img_size,
        "pad_stride": YOLOV5.pad_stride,
        "anchor_t": YOLOV5.anchor_t,
        "offset_g": YOLOV5.offset_g,
    }
    try:
        values = {k: check(k, data.get(k, defaults.get(k))) for k, check in TOML_FIELDS.items()}
    except S.FieldError as e:
        raise S.as_input_error(e, where) from None
    return validate_yolov5(YoloV5Preset(**values), where)


def yolov5_from_toml(path) -> YoloV5Preset:
    """Read a yolov5 preset TOML within the reader's bounds (:func:`~imbalance_cli.anchors.tomlfile.read_toml`)."""
    return yolov5_from_dict(read_toml(path, what="yolov5 preset"), str(path))


def refuse_yolov5(value, command: str, why: str) -> None:
    """:class:`InputError` (one line, ``--anchors``) when ``value`` is a yolov5 preset (named, an object or a TOML
    declaring the kind: :func:`imbalance_cli.anchors.kinds.kind_of`) that ``command`` cannot use."""
    from imbalance_cli.anchors.kinds import kind_of

    if value is not None and kind_of(value) is not None:
        raise InputError(f"imbalance {command} does not take yolov5 presets: {why}", record="--anchors")
