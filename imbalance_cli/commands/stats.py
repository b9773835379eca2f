"""`imbalance stats FILE`: the survey's dataset statistics (and anchor statistics) of one annotation file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._anchor_options import (
    AnchorsOpt, ChunkSizeOpt, DeviceOpt, EngineOpt, MatcherOpt, NegativeSampleOpt, NegIouOpt, PosIouOpt, WorkersOpt,
    build_spec,
)
from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet
from imbalance_cli.specs import DEFAULT_CHUNK_IMAGES, Device, Engine, Matcher, check_bins

FORMAT_CHOICES = ("coco", "lvis", "openimages", "objects365", "voc")


def _parse_bags_edges(text: str) -> list[float]:
    from imbalance_cli.errors import InputError

    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--bags-edges must be comma-separated numbers (inf allowed), got {text!r}") from None


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
    anchors: AnchorsOpt = "retinanet",
    matcher: MatcherOpt = Matcher.torchvision,
    device: DeviceOpt = Device.auto,
    engine: EngineOpt = Engine.auto,
    pos_iou: PosIouOpt = None,
    neg_iou: NegIouOpt = None,
    negative_iou_sample: NegativeSampleOpt = None,
    workers: WorkersOpt = 0,
    chunk_size: ChunkSizeOpt = DEFAULT_CHUNK_IMAGES,
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
) -> None:
    """Dataset imbalance statistics (survey Figs. 4, 5, 7, 13): class long tail, objects and classes per image,
    scale, location, imbalance measures, verdicts, and (unless --anchors none) anchor statistics."""
    from imbalance_cli.errors import InputError

    set_quiet(quiet)
    if format is not None and format.lower() not in FORMAT_CHOICES:
        raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {format!r}")
    check_bins("--location-bins", location_bins)
    edges = _parse_bags_edges(bags_edges)
    spec = build_spec(anchors, matcher=matcher, device=device, engine=engine, pos_iou=pos_iou, neg_iou=neg_iou,
                      negative_iou_sample=negative_iou_sample, workers=workers, chunk_size=chunk_size)

    from imbalance_cli import load
    from imbalance_cli.stats import analyze

    load_kwargs = {}
    if classes is not None:
        load_kwargs["classes"] = str(classes)
    if image_sizes is not None:
        load_kwargs["image_sizes"] = str(image_sizes)
    dataset = load(str(file), format=None if format is None else format.lower(), **load_kwargs)
    if spec is not None and dataset.has_image_sizes:  # the anchor limits, before any statistic is computed
        spec.check_images(dataset.heights, dataset.widths, dataset.image_ids, path=dataset.path)

    report = analyze(dataset, anchors="none" if spec is None else spec, location_bins=location_bins,
                     per_class_location=per_class_location, bags_edges=edges, hist_bins=hist_bins, strict=strict)

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
