"""`imbalance anchors FILE --preset NAME`: fit anchor sizes and ratios judged by the detector's own matcher."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from imbalance_cli.anchorfit.outcome import to_report
from imbalance_cli.anchorfit.search import check_fittable, fit_anchors, is_yolo
from imbalance_cli.anchors.kinds import any_preset
from imbalance_cli.anchors.snippets import TARGETS, check_grid_targets, check_yolo_targets
from imbalance_cli.commands._anchor_options import CocoEvalSizesOpt, DeviceOpt, size_by
from imbalance_cli.commands._common import check_out, echo_json, flag, handle_errors, out_option, set_quiet, wrote
from imbalance_cli.commands._split import SplitOpt, pick_split
from imbalance_cli.data import load
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.progress import progress
from imbalance_cli.report import anchorfit as render
from imbalance_cli.specs import Device

FORMAT_CHOICES = ("coco", "lvis", "openimages", "objects365", "voc", "yolo")


def _parse_sample(text: str):
    if text.strip().lower() == "all":
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"--sample must be a positive integer or 'all', got {text!r}")
    return n


def _parse_targets(text: str) -> tuple[str, ...] | None:
    if text.strip().lower() == "all":
        return None
    out = tuple(t.strip().lower() for t in text.split(",") if t.strip())
    bad = [t for t in out if t not in TARGETS]
    if bad or not out:
        raise InputError(f"--target must be 'all' or a comma-separated list of {', '.join(TARGETS)}, got {text!r}")
    return out


FileArg = Annotated[
    Path,
    typer.Argument(
        help="Annotation file (COCO/LVIS/Objects365 JSON, Open Images CSV, VOC, "
        "YOLO data.yaml; .gz accepted) with image sizes.",
        show_default=False,
    ),
]
PresetOpt = Annotated[
    str,
    typer.Option(
        "--preset",
        help="Preset to fit: retinanet | rpn | mmdet-retinanet | "
        "detectron2-retinanet | atss | yolov5 | path to a grid or yolov5 preset TOML.",
    ),
]
ObjectiveOpt = Annotated[
    str,
    typer.Option(
        "--objective",
        help="coverage (share of boxes with a positive at the "
        "positive threshold, worst size group weighted in) | positives (positives per box "
        "balanced across size and class-frequency groups, coverage kept) | bpr (YOLO-style "
        "presets only: AutoAnchor's best possible recall).",
    ),
]
BudgetOpt = Annotated[
    Optional[float],
    typer.Option(
        "--budget",
        help="Stop the search after this many seconds (the "
        "JSON records the iterations done; rerun with --iterations N to reproduce).",
        show_default=False,
    ),
]
IterationsOpt = Annotated[
    int,
    typer.Option("--iterations", help="Evolution candidates scored after the starts (preset, scaled preset, k-means)."),
]
SampleOpt = Annotated[
    str,
    typer.Option(
        "--sample",
        help="Images (seeded sample) each candidate is scored on, or 'all'. Final scores always use all images.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the image sample, the k-means start and the evolution.")]
TargetOpt = Annotated[
    str,
    typer.Option(
        "--target",
        help="Framework snippets: all | comma-separated torchvision, "
        "mmdet, detectron2, ultralytics (a target that cannot express the fit is refused).",
    ),
]
FormatOpt = Annotated[
    Optional[str],
    typer.Option(
        "--format", "-f", help="Annotation format override: " + "|".join(FORMAT_CHOICES) + ".", show_default=False
    ),
]


def anchors(
    file: FileArg,
    preset: PresetOpt = "retinanet",
    objective: ObjectiveOpt = "coverage",
    budget: BudgetOpt = None,
    iterations: IterationsOpt = 300,
    sample: SampleOpt = "500",
    seed: SeedOpt = 0,
    target: TargetOpt = "all",
    device: DeviceOpt = Device.auto,
    coco_eval_sizes: CocoEvalSizesOpt = False,
    split: SplitOpt = None,
    format: FormatOpt = None,
    json_out: bool = flag("--json", help="Print only the imbalance.anchors/1 JSON to stdout."),
    out: Optional[Path] = out_option("anchors.json, fitted.toml, the framework snippets, anchors.png and report.html"),
    quiet: bool = flag("--quiet", "-q", help="No progress bar."),
) -> None:
    """Fit anchor sizes and aspect ratios to the dataset, each candidate judged by the preset's exact resize, grid
    and matcher; print a before/after table and ready-to-paste configs. Ctrl-C keeps the best so far.

    Example: imbalance anchors instances_train2017.json --preset retinanet --out fit/ ; then
    imbalance stats instances_val2017.json --anchors fit/fitted.toml
    """
    set_quiet(quiet)
    check_out(out, file, own=render.OWN_FILES)
    _check_numbers(format, iterations, budget)
    n_sample = _parse_sample(sample)
    targets = _parse_targets(target)
    p = any_preset(preset)
    check_fittable(p, objective)
    _refuse_for_preset(p, device, targets)

    dataset = pick_split(load(str(file), format=None if format is None else format.lower()), split, quiet=quiet)
    res = fit_anchors(
        dataset,
        p,
        objective=objective,
        sample=n_sample,
        seed=seed,
        iterations=iterations,
        budget=budget,
        device=device.value,
        progress_factory=progress,
        size_by=size_by(coco_eval_sizes),
    )
    _show(res, to_report(res, targets), out, json_out, quiet)


def _check_numbers(format: str | None, iterations: int, budget: float | None) -> None:
    """Refuse an unknown --format, a negative --iterations and a non-positive --budget before anything is read."""
    if format is not None and format.lower() not in FORMAT_CHOICES:
        raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {format!r}")
    if iterations < 0:
        raise InputError(f"--iterations must be >= 0, got {iterations}")
    if budget is not None and not budget > 0:
        raise InputError(f"--budget must be a positive number of seconds, got {budget}")


def _show(res, report: dict, out: Path | None, json_out: bool, quiet: bool) -> None:
    """Write the --out directory, then print the JSON (--json) or the terminal report and what was written."""
    written = render.write_outputs(report, out) if out is not None else []
    if res.stopped == "interrupted" and not quiet:
        typer.echo(f"interrupted after {res.iterations_done} iterations: kept the best set so far", err=True)
    if json_out:
        echo_json(dumps_json(report))
        return
    render.render_terminal(report)
    wrote(out, written, quiet)
    if written and not quiet:
        typer.echo(f"use --anchors {out}/fitted.toml in every command")


def _refuse_for_preset(p, device: Device, targets) -> None:
    """Refuse what the preset's kind cannot take: --device cuda and grid targets for a yolov5 preset, the ultralytics
    target for a grid preset."""
    if is_yolo(p):
        if device is Device.cuda:
            raise InputError(
                "--device cuda does not apply to the yolov5 preset: YOLOv5's assignment runs on the CPU "
                "(leave --device at cpu or auto)"
            )
        check_yolo_targets(targets)
    else:
        check_grid_targets(p, targets)


def register(app: typer.Typer) -> None:
    """Add ``imbalance anchors`` to the Typer app."""
    app.command("anchors")(handle_errors(anchors))
