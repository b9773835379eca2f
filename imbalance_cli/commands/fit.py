"""`imbalance anchors FILE --preset NAME`: fit anchor sizes and ratios judged by the detector's own matcher."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet

FORMAT_CHOICES = ("coco", "lvis", "openimages", "objects365", "voc", "yolo")


def _parse_sample(text: str):
    from imbalance_cli.errors import InputError

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
    from imbalance_cli.anchors.fit import TARGETS
    from imbalance_cli.errors import InputError

    if text.strip().lower() == "all":
        return None
    out = tuple(t.strip().lower() for t in text.split(",") if t.strip())
    bad = [t for t in out if t not in TARGETS]
    if bad or not out:
        raise InputError(f"--target must be 'all' or a comma-separated list of {', '.join(TARGETS)}, got {text!r}")
    return out


def anchors(
    file: Path = typer.Argument(..., help="Annotation file (COCO/LVIS/Objects365 JSON, Open Images CSV, VOC, "
                                "YOLO data.yaml; .gz accepted) with image sizes.", show_default=False),
    preset: str = typer.Option("retinanet", "--preset", help="Preset to fit: retinanet | rpn | mmdet-retinanet | "
                               "detectron2-retinanet | atss | yolov5 | path to a grid or yolov5 preset TOML."),
    objective: str = typer.Option("coverage", "--objective", help="coverage (share of boxes with a positive at the "
                                  "positive threshold, worst size group weighted in) | positives (positives per box "
                                  "balanced across size and class-frequency groups, coverage kept) | bpr (YOLO-style "
                                  "presets only: AutoAnchor's best possible recall)."),
    budget: Optional[float] = typer.Option(None, "--budget", help="Stop the search after this many seconds (the "
                                           "JSON records the iterations done; rerun with --iterations N to reproduce).",
                                           show_default=False),
    iterations: int = typer.Option(300, "--iterations", help="Evolution candidates scored after the starts (preset, scaled preset, k-means)."),
    sample: str = typer.Option("500", "--sample", help="Images (seeded sample) each candidate is scored on, or "
                               "'all'. Final scores always use all images."),
    seed: int = typer.Option(0, "--seed", help="Seed of the image sample, the k-means start and the evolution."),
    target: str = typer.Option("all", "--target", help="Framework snippets: all | comma-separated torchvision, "
                               "mmdet, detectron2, ultralytics (a target that cannot express the fit is refused)."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda | auto (the engines give identical labels)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Annotation format override: "
                                         + "|".join(FORMAT_CHOICES) + ".", show_default=False),
    json_out: bool = typer.Option(False, "--json", help="Print only the imbalance.anchors/1 JSON to stdout."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write anchors.json, fitted.toml, the framework "
                                       "snippets, anchors.png and report.html into this directory.",
                                       show_default=False),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Fit anchor sizes and aspect ratios to the dataset, each candidate judged by the preset's exact resize, grid
    and matcher; print a before/after table and ready-to-paste configs. Ctrl-C keeps the best so far.

    Example: imbalance anchors instances_train2017.json --preset retinanet --out fit/ ; then
    imbalance stats instances_val2017.json --anchors fit/fitted.toml
    """
    import sys

    from imbalance_cli.anchors.fit import check_fittable, fit_anchors, is_yolo, resolve_preset, to_report
    from imbalance_cli.errors import InputError

    set_quiet(quiet)
    if format is not None and format.lower() not in FORMAT_CHOICES:
        raise InputError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, got {format!r}")
    if device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {device!r}")
    if iterations < 0:
        raise InputError(f"--iterations must be >= 0, got {iterations}")
    if budget is not None and not budget > 0:
        raise InputError(f"--budget must be a positive number of seconds, got {budget}")
    n_sample = _parse_sample(sample)
    targets = _parse_targets(target)
    p = resolve_preset(preset)
    check_fittable(p, objective)
    if is_yolo(p):
        if targets is not None and any(t != "ultralytics" for t in targets):
            bad = next(t for t in targets if t != "ultralytics")
            raise InputError(f"--target {bad} cannot express YOLO anchors (free width,height pairs per level); "
                             "for a yolov5 preset use --target ultralytics")
    elif targets is not None and "ultralytics" in targets:
        raise InputError(f"--target ultralytics needs a YOLO preset (anchors as width,height pairs per level); preset "
                         f"{p.name!r} lays sizes x aspect ratios: use torchvision, mmdet or detectron2")

    from imbalance_cli import load
    from imbalance_cli.progress import progress

    dataset = load(str(file), format=None if format is None else format.lower())
    res = fit_anchors(dataset, p, objective=objective, sample=n_sample, seed=seed, iterations=iterations,
                      budget=budget, device=device, progress_factory=progress)
    report = to_report(res, targets)
    written = []
    if out is not None:
        from imbalance_cli.report.fit import write_outputs

        written = write_outputs(report, out)
    if res.stopped == "interrupted" and not quiet:
        typer.echo(f"interrupted after {res.iterations_done} iterations: kept the best set so far", err=True)
    if json_out:
        from imbalance_cli.fileio import dumps_json

        echo_json(dumps_json(report))
        return
    from rich.console import Console

    from imbalance_cli.report.fit import render_terminal

    console = Console(width=None if sys.stdout.isatty() else 150)
    render_terminal(report, console)
    if written and not quiet:
        console.print(f"wrote {len(written)} files to {out} (use --anchors {out}/fitted.toml in every command)")


def register(app: typer.Typer) -> None:
    """Add ``imbalance anchors`` to the Typer app."""
    app.command("anchors")(handle_errors(anchors))
