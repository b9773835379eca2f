"""Writing a fitted preset as TOML, the format :mod:`imbalance_cli.anchors.tomlfile` reads back.

:func:`preset_to_toml` writes a grid preset (read by :func:`imbalance_cli.anchors.presets.get_preset`),
:func:`yolov5_toml` a yolov5 one (read by :func:`imbalance_cli.anchors.yolov5.preset_from_toml`); every float is
written as the shortest text that reads back to the same float, so a preset loads back unchanged.
"""

from __future__ import annotations

from imbalance_cli.errors import InputError


def toml_str(s: str) -> str:
    """``s`` as a TOML basic string (backslashes and double quotes escaped)."""
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def float_text(v: float) -> str:
    """A float as the shortest text that reads back to the same float (an integer-valued one keeps '.0')."""
    return repr(float(v))


def preset_to_toml(preset) -> str:
    """The grid preset as TOML that :func:`imbalance_cli.anchors.presets.get_preset` loads back unchanged."""

    def nums(vals) -> str:
        return "[" + ", ".join(float_text(v) for v in vals) + "]"

    lines = [
        "# Anchor preset fitted by `imbalance anchors` (load with --anchors THIS_FILE).",
        f"name = {toml_str(preset.name)}",
        f"kind = {toml_str(preset.kind)}",
        "strides = [" + ", ".join(str(int(s)) for s in preset.strides) + "]",
        "sizes = [" + ", ".join(nums(s) for s in preset.sizes) + "]",
        "aspect_ratios = [" + ", ".join(nums(r) for r in preset.aspect_ratios) + "]",
        "level_names = [" + ", ".join(toml_str(n) for n in preset.level_names) + "]",
        f"pos_iou = {float_text(preset.pos_iou)}",
        f"neg_iou = {float_text(preset.neg_iou)}",
        f"allow_low_quality = {'true' if preset.allow_low_quality else 'false'}",
        f"matcher = {toml_str(preset.matcher)}",
        f"stride_rule = {toml_str(preset.stride_rule)}",
        f"anchor_rule = {toml_str(preset.anchor_rule)}",
        f"box_rule = {toml_str(preset.box_rule)}",
        f"center_offset = {float_text(preset.center_offset)}",
        f"assigner = {toml_str(preset.assigner)}",
        f"topk = {int(preset.topk)}",
        f"center_radius = {float_text(preset.center_radius)}",
        "",
        "[resize]",
    ]
    r = preset.resize
    if r.min_size is not None:
        lines.append(f"min_size = {int(r.min_size)}")
    if r.max_size is not None:
        lines.append(f"max_size = {int(r.max_size)}")
    if r.fixed is not None:
        lines.append(f"fixed = [{int(r.fixed[0])}, {int(r.fixed[1])}]")
    lines += [f"size_divisible = {int(r.size_divisible)}", f"rule = {toml_str(r.rule)}", ""]
    if r.min_size is None or r.max_size is None:
        raise InputError(
            "the fitted preset has an unbounded resize (min_size or max_size missing), which the TOML "
            "format cannot express as 'none'; give both bounds in the source preset"
        )
    return "\n".join(lines)


def yolov5_toml(preset) -> str:
    """A yolov5 preset as TOML (``kind = "yolov5"``) that ``imbalance stats --anchors FILE`` and
    ``imbalance anchors --preset FILE`` load back (:func:`imbalance_cli.anchors.yolov5.preset_from_toml`)."""
    return "\n".join(
        [
            "# YOLOv5 anchor preset fitted by `imbalance anchors` (load with --anchors THIS_FILE).",
            f"name = {toml_str(preset.name)}",
            'kind = "yolov5"',
            "anchors = ["
            + ", ".join(
                "[" + ", ".join(f"[{float_text(w)}, {float_text(h)}]" for w, h in lv) + "]" for lv in preset.anchors
            )
            + "]",
            "strides = [" + ", ".join(str(int(s)) for s in preset.strides) + "]",
            "level_names = [" + ", ".join(toml_str(n) for n in preset.level_names) + "]",
            f"img_size = {int(preset.img_size)}",
            f"pad_stride = {int(preset.pad_stride)}",
            f"anchor_t = {float_text(preset.anchor_t)}",
            f"offset_g = {float_text(preset.offset_g)}",
            "",
        ]
    )
