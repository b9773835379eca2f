"""`imbalance stats FILE`: the survey's dataset statistics (and anchor statistics) of one annotation file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet

FORMAT_CHOICES = ("coco", "lvis", "openimages", "objects365", "voc")


def _parse_bags_edges(text: str) -> list[float]:
    from imbalance_cli.errors import InputError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--bags-edges must be comma-separated numbers (inf allowed), got {text!r}") from None


def _parse_sample(text: Optional[str]):
    from imbalance_cli.errors import InputError

    if text is None:
        return None
    if text.strip().lower() == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 1:
        raise InputError(f"--negative-iou-sample must be a positive integer or 'all', got {text!r}")
    return n


def stats(
    file: Path = typer.Argument(..., help="Annotation file (COCO/LVIS/Objects365 JSON, Open Images CSV, VOC XML or "
                                "directory; .gz accepted).", show_default=False),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Override format detection: "
                                         + "|".join(FORMAT_CHOICES) + ".", show_default=False),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Open Images class-descriptions-boxable.csv "
                                           "(default: looked for beside FILE).", show_default=False),
    image_sizes: Optional[Path] = typer.Option(None, "--image-sizes", help="Open Images image sizes CSV "
                                               "(ImageID,Width,Height); without it only relative statistics.",
                                               show_default=False),
    anchors: str = typer.Option("retinanet", "--anchors", help="Anchor preset for anchor statistics: none | "
                                "retinanet | rpn | ssd300 | path to a preset TOML."),
    matcher: str = typer.Option("torchvision", "--matcher", help="Anchor labelling rule: torchvision (the model's own "
                                "torchvision matcher; SSDMatcher for ssd300) | mmdet (MaxIoUAssigner ties) | ssd | auto."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda (auto = CUDA when available)."),
    pos_iou: Optional[float] = typer.Option(None, "--pos-iou", help="Override the preset's positive IoU threshold.",
                                            show_default=False),
    neg_iou: Optional[float] = typer.Option(None, "--neg-iou", help="Override the preset's negative IoU threshold.",
                                            show_default=False),
    negative_iou_sample: Optional[str] = typer.Option(None, "--negative-iou-sample", help="Images sampled for the "
                                                      "negative-anchor IoU histogram: N or 'all' (exact).",
                                                      show_default=False),
    location_bins: int = typer.Option(20, "--location-bins", help="Bins per axis of the box-centre histogram."),
    per_class_location: bool = typer.Option(False, "--per-class-location", help="Also a centre histogram per class."),
    bags_edges: str = typer.Option("0,10,100,1000,inf", "--bags-edges", help="BAGS group edges on instance counts."),
    hist_bins: int = typer.Option(50, "--hist-bins", help="Bins of the relative width/height/area histograms."),
    json_out: bool = typer.Option(False, "--json", help="Print only the report JSON to stdout."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write stats.json, CSVs, PNG figures and "
                                       "report.html into this directory.", show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status messages."),
    strict: bool = typer.Option(False, "--strict", help="Fail (exit 2) on the first invalid box instead of "
                                "counting it."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Processes decoding JSON chunks (default: all "
                                          "cores); results do not depend on it.", show_default=False),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the columnar cache "
                                  "($IMBALANCE_CACHE)."),
) -> None:
    """Dataset imbalance statistics (survey Figs. 4, 5, 7, 13): class long tail, objects and classes per image,
    scale, location, imbalance measures, verdicts, and (unless --anchors none) anchor statistics."""
    from imbalance_cli.errors import InputError

    set_quiet(quiet)
    if format is not None and format.lower() not in FORMAT_CHOICES:
        raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {format!r}")
    if matcher.lower() not in ("torchvision", "mmdet", "ssd", "auto"):
        raise InputError(f"--matcher must be torchvision, mmdet, ssd or auto, got {matcher!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    edges = _parse_bags_edges(bags_edges)
    sample = _parse_sample(negative_iou_sample)

    from imbalance_cli import load
    from imbalance_cli.stats import analyze

    from imbalance_cli.data.spec import LoadSpec

    spec = LoadSpec.build(format=format, classes=classes, image_sizes=image_sizes, workers=workers,
                          cache=not no_cache, strict=strict)
    dataset = load(str(file), spec=spec)

    anchor_kwargs = {}
    if anchors.lower() != "none":
        anchor_kwargs = {"matcher": matcher, "device": device}
        if pos_iou is not None:
            anchor_kwargs["pos_iou"] = pos_iou
        if neg_iou is not None:
            anchor_kwargs["neg_iou"] = neg_iou
        if sample is not None:
            anchor_kwargs["negative_iou_sample"] = sample
    report = analyze(dataset, anchors=anchors, location_bins=location_bins, per_class_location=per_class_location,
                     bags_edges=edges, hist_bins=hist_bins, strict=strict, **anchor_kwargs)

    written = report.save(out) if out is not None else []
    if json_out:
        echo_json(report.to_json())
        return
    from rich.console import Console

    from imbalance_cli.report import render_terminal

    console = Console()
    render_terminal(report.to_dict(), console)
    if written and not quiet:
        console.print(f"wrote {len(written)} files to {out}")


def register(app: typer.Typer) -> None:
    """Add ``imbalance stats`` to the Typer app."""
    app.command("stats")(handle_errors(stats))
