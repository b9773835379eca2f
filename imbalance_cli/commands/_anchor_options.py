"""The anchor options every command that lays anchors shares, declared once, and the spec built from them.

Commands declare their parameters with these ``Annotated`` types (``anchors: AnchorsOpt =
"retinanet"``) and call :func:`build_spec` once; choices are the Enums of
:mod:`imbalance_cli.specs`, listed in ``--help`` and rejected at parse time with one line and exit
code 2 (not Click's multi-line usage box).
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from imbalance_cli.commands._common import choice_metavar, choice_parser
from imbalance_cli.specs import (
    DEFAULT_CHUNK_IMAGES,
    DEFAULT_NEGATIVE_IOU_SAMPLE,
    MAX_WORKERS,
    AnchorSpec,
    Device,
    Engine,
    Matcher,
    parse_anchors,
    parse_sample,
)

AnchorsOpt = Annotated[
    str, typer.Option("--anchors", help="Anchor preset: none | retinanet | rpn | ssd300 | path to a preset TOML.")
]
OptionalAnchorsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--anchors",
        help="Also measure anchors under this preset: retinanet | rpn | ssd300 | path to a preset TOML.",
        show_default=False,
    ),
]
MatcherOpt = Annotated[
    Matcher,
    typer.Option(
        "--matcher",
        parser=choice_parser(Matcher, "--matcher"),
        metavar=choice_metavar(Matcher),
        help="Anchor labelling rule: auto (the preset's own) | torchvision (the model's own torchvision matcher; "
        "SSDMatcher for ssd300) | mmdet (MaxIoUAssigner ties) | ssd.",
    ),
]
DeviceOpt = Annotated[
    Device,
    typer.Option(
        "--device",
        parser=choice_parser(Device, "--device"),
        metavar=choice_metavar(Device),
        help="Device of the dense engine (auto = CUDA when available).",
    ),
]
EngineOpt = Annotated[
    Engine,
    typer.Option(
        "--engine",
        parser=choice_parser(Engine, "--engine"),
        metavar=choice_metavar(Engine),
        help="Anchor engine: culled (CPU) | dense (any torch device) | auto (culled on a CPU, dense on CUDA); "
        "identical labels.",
    ),
]
PosIouOpt = Annotated[
    Optional[float], typer.Option("--pos-iou", help="Override the preset's positive IoU threshold.", show_default=False)
]
NegIouOpt = Annotated[
    Optional[float], typer.Option("--neg-iou", help="Override the preset's negative IoU threshold.", show_default=False)
]
NegativeSampleOpt = Annotated[
    Optional[str],
    typer.Option(
        "--negative-iou-sample",
        show_default=False,
        help=f"Images sampled for the negative-anchor IoU histogram: N or 'all' (exact); default all on CUDA, "
        f"{DEFAULT_NEGATIVE_IOU_SAMPLE} on a CPU.",
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        help=f"Processes for JSON decoding and the anchor pass (0 = the machine's cores, at most {MAX_WORKERS}); "
        "results do not depend on it.",
    ),
]
ChunkSizeOpt = Annotated[
    int,
    typer.Option(
        "--chunk-size",
        help="Images per chunk of the anchor pass (memory per worker grows with it); results do not depend on it.",
    ),
]


def build_spec(
    anchors: Optional[str],
    *,
    matcher: Matcher = Matcher.auto,
    device: Device = Device.auto,
    engine: Engine = Engine.auto,
    pos_iou: Optional[float] = None,
    neg_iou: Optional[float] = None,
    negative_iou_sample: Optional[str] = None,
    workers: int = 0,
    chunk_size: int = DEFAULT_CHUNK_IMAGES,
) -> Optional[AnchorSpec]:
    """The :class:`AnchorSpec` of a command's options; ``None`` for ``--anchors none`` (or no ``--anchors``)."""
    preset = parse_anchors(anchors)
    if preset is None:
        parse_sample(negative_iou_sample)  # a bad value is an error even when no anchors are laid
        return None
    return AnchorSpec.build(
        preset,
        matcher=matcher,
        device=device,
        engine=engine,
        pos_iou=pos_iou,
        neg_iou=neg_iou,
        negative_iou_sample=negative_iou_sample,
        workers=workers,
        chunk_images=chunk_size,
    )


CocoEvalSizesOpt = Annotated[
    bool,
    typer.Option(
        "--coco-eval-sizes",
        metavar="",
        help="Size groups by the file's `area` field, as COCO evaluation (pycocotools areaRng) forms them, labelled "
        "so in every output; default: the box's own w x h in original pixels (small < 32², medium < 96²).",
    ),
]


def size_by(coco_eval_sizes: bool) -> str:
    """The size-group definition an option value asks for (:mod:`imbalance_cli.vocabulary`)."""
    return "area_field" if coco_eval_sizes else "box"
