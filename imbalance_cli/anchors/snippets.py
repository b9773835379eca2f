"""A fitted preset as each framework's own configuration: text ready to paste, one entry per framework.

Each entry is ``{"language", "text", "exact", "note"}``. A grid preset (sizes x ratios) is written for torchvision's
``AnchorGenerator``, mmdetection's ``AnchorGenerator`` and detectron2's ``DefaultAnchorGenerator``
(:func:`framework_configs`); a yolov5 preset (free ``(w, h)`` pairs per level) for the ultralytics model yaml
(:func:`yolo_configs`). A framework that cannot express the preset is refused with one line.
"""

from __future__ import annotations

from typing import Any

from imbalance_cli.anchors.tomlwriter import float_text
from imbalance_cli.errors import InputError

#: The frameworks a snippet can be written for (``imbalance anchors --target``).
TARGETS = ("torchvision", "mmdet", "detectron2", "ultralytics")


def check_yolo_targets(targets: tuple[str, ...] | None) -> None:
    """Refuse a target other than ``ultralytics`` for a yolov5 preset (None: the default, ultralytics)."""
    bad = [t for t in targets or () if t != "ultralytics"]
    if bad:
        raise InputError(
            f"--target {bad[0]} cannot express YOLO anchors (free width,height pairs per level); "
            "for a yolov5 preset use --target ultralytics"
        )


def check_grid_targets(preset, targets: tuple[str, ...] | None) -> None:
    """Refuse the ``ultralytics`` target for a grid preset (None: the default, every grid framework)."""
    if targets is not None and "ultralytics" in targets:
        raise InputError(
            f"--target ultralytics needs a YOLO preset (anchors as width,height pairs per level); "
            f"preset {preset.name!r} lays sizes x aspect ratios: use torchvision, mmdet or detectron2"
        )


def ultralytics_snippet(preset) -> str:
    """The model-yaml ``anchors:`` block (ultralytics/yolov5 ``models/*.yaml``): one ``[w,h, w,h, ...]`` line per
    level, finest level first, in pixels of the ``img_size`` input."""
    lines = ["# ultralytics/yolov5 model yaml (e.g. models/yolov5s.yaml): replace its anchors: block", "anchors:"]
    for lv, name, stride in zip(preset.anchors, preset.level_names, preset.strides):
        lines.append(
            "  - [" + ", ".join(f"{float_text(w)},{float_text(h)}" for w, h in lv) + f"]  # {name}/{int(stride)}"
        )
    return "\n".join(lines) + "\n"


def yolo_configs(preset, targets: tuple[str, ...] | None = None) -> dict:
    """Snippets for a fitted YOLOv5 preset: only ``ultralytics`` (torchvision / mmdetection / detectron2 lay
    sizes x ratios, which cannot express free (w, h) pairs per level: asking for them raises InputError)."""
    check_yolo_targets(targets)
    return {
        "ultralytics": {
            "language": "yaml",
            "text": ultralytics_snippet(preset),
            "exact": True,
            "note": "the scored anchors (YOLOv5 letterbox, strides, anchor_t and build_targets)",
        }
    }


def _framework_of(preset) -> str:
    return {"torchvision": "torchvision", "mmdet": "mmdet", "detectron2": "detectron2"}[preset.anchor_rule]


def _nums(values) -> str:
    return ", ".join(float_text(v) for v in values)


def _torchvision_text(sizes, ratios) -> str:
    return (
        "from torchvision.models.detection.anchor_utils import AnchorGenerator\n\n"
        "anchor_generator = AnchorGenerator(\n"
        "    sizes=(" + ", ".join("(" + _nums(s) + ",)" for s in sizes) + ",),\n"
        "    aspect_ratios=((" + _nums(ratios) + ",),) * " + str(len(sizes)) + ",\n"
        ")\n"
        "# e.g. torchvision.models.detection.retinanet_resnet50_fpn(anchor_generator=anchor_generator, ...)\n"
    )


def _mmdet_text(params, ratios, strides) -> str:
    return (
        "anchor_generator = dict(\n"
        "    type='AnchorGenerator',\n"
        "    base_sizes=[" + _nums(params.base) + "],\n"
        "    scales=[" + _nums(params.scales) + "],\n"
        "    ratios=[" + _nums(ratios) + "],\n"
        "    strides=[" + ", ".join(str(int(s)) for s in strides) + "])\n"
        "# model.bbox_head.anchor_generator in an mmdetection config\n"
    )


def _detectron2_text(sizes, ratios) -> str:
    return (
        "MODEL:\n  ANCHOR_GENERATOR:\n"
        "    SIZES: [" + ", ".join("[" + _nums(s) + "]" for s in sizes) + "]\n"
        "    ASPECT_RATIOS: [[" + _nums(ratios) + "]]\n"
    )


def framework_configs(preset, params: Any, targets: tuple[str, ...] | None = None) -> dict:
    """Ready-to-paste configuration per framework for a fitted grid preset and its search-space point ``params``
    (per-level ``base`` sizes, shared ``scales`` and ``ratios``, ``sizes()``:
    :class:`imbalance_cli.anchorfit.grid.AnchorParams`).

    ``exact`` is true for the framework whose arithmetic the preset follows (its ``anchor_rule``): that framework
    lays exactly the anchors that were scored. For the others the sizes and ratios are the same numbers, but their
    own resize rounding, base-anchor rounding, anchor order and centre offset apply (rerun ``imbalance stats`` with
    the matching preset to check). Ultralytics has no sizes x ratios anchors: asking for it (``targets``) with a
    grid preset raises InputError.
    """
    check_grid_targets(preset, targets)
    targets = tuple(TARGETS[:3]) if targets is None else tuple(targets)
    own = _framework_of(preset)
    sizes = params.sizes()
    ratios = list(params.ratios)
    out = {}

    def note(fw):
        if fw == own:
            return "the scored anchors (same resize, steps and rounding as this preset)"
        return (
            f"same sizes and ratios, but {fw}'s own arithmetic (resize rounding, base-anchor rounding, "
            f"centre offset, strides) differs from preset {preset.name!r}, which follows {own}"
        )

    if "torchvision" in targets:
        text = _torchvision_text(sizes, ratios)
        out["torchvision"] = {
            "language": "python",
            "text": text,
            "exact": own == "torchvision",
            "note": note("torchvision"),
        }
    if "mmdet" in targets:
        n = note("mmdet") + (
            "; mmdetection multiplies base_size x scale itself, which differs from the stored "
            "sizes (rounded to 1e-4 px) by under 5e-5 px"
            if own == "mmdet"
            else ""
        )
        out["mmdet"] = {
            "language": "python",
            "text": _mmdet_text(params, ratios, preset.strides),
            "exact": own == "mmdet",
            "note": n,
        }
    if "detectron2" in targets:
        text = _detectron2_text(sizes, ratios)
        out["detectron2"] = {"language": "yaml", "text": text, "exact": own == "detectron2", "note": note("detectron2")}
    return out
