"""`imbalance stats FILE`: the survey's dataset statistics (and anchor statistics) of one annotation file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import check_out, echo_json, flag, handle_errors, out_option, set_quiet, wrote
from imbalance_cli.data import load
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import splits as render_splits
from imbalance_cli.report import stats as render
from imbalance_cli.stats import analyze
from imbalance_cli.stats.splits import has_splits, split_statistics

FORMAT_CHOICES = ("coco", "lvis", "openimages", "objects365", "voc", "yolo")


def _parse_bags_edges(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--bags-edges must be comma-separated numbers (inf allowed), got {text!r}") from None


def _parse_sample(text: Optional[str]):
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
                                "directory, YOLO data.yaml or labels folder; .gz accepted).", show_default=False),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Override format detection: "
                                         + "|".join(FORMAT_CHOICES) + ".", show_default=False),
    classes: Optional[Path] = typer.Option(None, "--classes", help="Open Images class-descriptions-boxable.csv "
                                           "(default: looked for beside FILE), or the names.txt of a YOLO labels "
                                           "folder.", show_default=False),
    image_sizes: Optional[Path] = typer.Option(None, "--image-sizes", help="Open Images image sizes CSV "
                                               "(ImageID,Width,Height); without it only relative statistics.",
                                               show_default=False),
    anchors: Optional[str] = typer.Option(None, "--anchors", help="Anchor preset for anchor statistics: none | "
                                          "retinanet | rpn | ssd300 | yolov5 | path to a preset TOML. "
                                          "Default: retinanet; yolov5 for a YOLO dataset with images.", show_default=False),
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
    per_class_location: bool = flag("--per-class-location", help="Also a centre histogram per class."),
    bags_edges: str = typer.Option("0,10,100,1000,inf", "--bags-edges", help="BAGS group edges on instance counts."),
    hist_bins: int = typer.Option(50, "--hist-bins", help="Bins of the relative width/height/area histograms."),
    json_out: bool = flag("--json", help="Print only the report JSON to stdout."),
    out: Optional[Path] = out_option("stats.json, CSVs, PNG figures and report.html"),
    quiet: bool = flag("--quiet", "-q", help="No progress bars or status messages."),
    strict: bool = flag("--strict", help="Fail (exit 2) on the first invalid box instead of counting it."),
) -> None:
    """Dataset imbalance statistics (survey Figs. 4, 5, 7, 13): class long tail, objects and classes per image,
    scale, location, imbalance measures, verdicts, and (unless --anchors none) anchor statistics."""
    set_quiet(quiet)
    check_out(out)
    if format is not None and format.lower() not in FORMAT_CHOICES:
        raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {format!r}")
    if matcher.lower() not in ("torchvision", "mmdet", "ssd", "auto"):
        raise InputError(f"--matcher must be torchvision, mmdet, ssd or auto, got {matcher!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    edges = _parse_bags_edges(bags_edges)
    sample = _parse_sample(negative_iou_sample)

    load_kwargs = {}
    if classes is not None:
        load_kwargs["classes"] = str(classes)
    if image_sizes is not None:
        load_kwargs["image_sizes"] = str(image_sizes)
    dataset = load(str(file), format=None if format is None else format.lower(), **load_kwargs)
    if anchors is None:  # the detector a dataset's users train: YOLOv5 for YOLO datasets, RetinaNet otherwise
        anchors = ("yolov5" if dataset.has_image_sizes else "none") if dataset.format == "yolo" else "retinanet"
    if dataset.info.get("bad_line_count"):  # YOLO label files: bad lines (file:line) are fatal with --strict
        if strict:
            raise InputError(f"{dataset.info['bad_lines'][0]} (--strict makes bad label lines fatal)")
        if not json_out:
            typer.echo(f"warning: {dataset.info['bad_line_count']} bad label line(s) dropped, first: "
                       f"{dataset.info['bad_lines'][0]}", err=True)

    anchor_kwargs = {}
    if anchors.lower() != "none":
        anchor_kwargs = {"matcher": matcher, "device": device}
        if pos_iou is not None:
            anchor_kwargs["pos_iou"] = pos_iou
        if neg_iou is not None:
            anchor_kwargs["neg_iou"] = neg_iou
        if sample is not None:
            anchor_kwargs["negative_iou_sample"] = sample
    if has_splits(dataset):  # a data.yaml with several splits: each split plus the train-vs-val comparison
        split_report = split_statistics(dataset, anchors=anchors, location_bins=location_bins,
                                        per_class_location=per_class_location, bags_edges=edges, scale_bins=hist_bins,
                                        strict=strict, **anchor_kwargs)
        written = render_splits.write_outputs(split_report, out) if out is not None else []
        if json_out:
            echo_json(dumps_json(split_report))
            return
        render_splits.render_terminal(split_report)
        wrote(out, written, quiet)
        return
    report = analyze(dataset, anchors=anchors, location_bins=location_bins, per_class_location=per_class_location,
                     bags_edges=edges, hist_bins=hist_bins, strict=strict, **anchor_kwargs)

    data = report.to_dict()
    written = render.write_outputs(data, out) if out is not None else []
    if json_out:
        echo_json(report.to_json())
        return
    render.render_terminal(data)
    wrote(out, written, quiet)


def register(app: typer.Typer) -> None:
    """Add ``imbalance stats`` to the Typer app."""
    app.command("stats")(handle_errors(stats))
