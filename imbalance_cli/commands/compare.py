"""`imbalance compare`: two datasets side by side (class, scale, location, foreground) with distances."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import check_out, echo_json, flag, handle_errors, out_option, set_quiet, wrote
from imbalance_cli.data import load
from imbalance_cli.data.spec import LoadSpec
from imbalance_cli.data.yolo import is_yolo_path
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import compare as render
from imbalance_cli.specs import check_bins, parse_anchors
from imbalance_cli.stats.geometry import MAX_SCALE_BINS
from imbalance_cli.stats.compare import compare_datasets


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("compare")
    @handle_errors
    def compare(
        file_a: Path = typer.Argument(..., help="First annotation file (e.g. train)."),
        file_b: Path = typer.Argument(..., help="Second annotation file (e.g. val, or after resampling)."),
        anchors: Optional[str] = typer.Option(None, "--anchors", help="Also compare foreground anchors under this "
                                              "preset (retinanet|rpn|ssd300|yolov5|my.toml)."),
        scale_bins: int = typer.Option(50, "--scale-bins", help="Bins of the relative-size histograms on [0, 1]."),
        location_bins: int = typer.Option(20, "--location-bins", help="Bins per axis of the box-centre histogram."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override (both files)."),
        json_out: bool = flag("--json", help="Print the imbalance.compare/1 JSON to stdout only."),
        out: Optional[Path] = out_option("compare.json, compare_classes.csv and overlay plots"),
        quiet: bool = flag("--quiet", "-q", help="No progress bars."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Processes decoding JSON chunks (default: all "
                                              "cores); results do not depend on it.", show_default=False),
        no_cache: bool = flag("--no-cache", help="Neither read nor write the columnar cache ($IMBALANCE_CACHE)."),

        yolo_version: Optional[int] = typer.Option(None, "--yolo-version", help="YOLO datasets: count as Ultralytics "
                                                   "8.x reads them (8, default) or as YOLOv5 7.0 does (5).",
                                                   show_default=False),
    ):
        """Class, scale and location distributions of A and B, their distances (TV, JS, Wasserstein) and overlays.

        Example: imbalance compare instances_train2017.json instances_val2017.json --out cmp/
        """
        set_quiet(quiet)
        check_out(out, file_a, file_b, own=render.OWN_FILES)
        spec = LoadSpec.build(format=fmt, workers=workers, cache=not no_cache, yolo_version=yolo_version)
        if not 1 <= scale_bins <= MAX_SCALE_BINS:
            raise InputError(f"--scale-bins must be from 1 to {MAX_SCALE_BINS:,}, got {scale_bins}")
        check_bins("--location-bins", location_bins)
        if yolo_version is not None and not any(is_yolo_path(f) for f in (file_a, file_b)):
            raise InputError("--yolo-version applies to YOLO datasets (data.yaml or a labels folder) only")
        a, b = (load(f, spec=spec if is_yolo_path(f) else replace(spec, yolo_version=8)) for f in (file_a, file_b))
        report = compare_datasets(a, b, anchors=parse_anchors(anchors), scale_bins=scale_bins, location_bins=location_bins,
                                  names=(file_a.name, file_b.name))
        written = render.write_outputs(report, out) if out is not None else []
        if json_out:
            echo_json(dumps_json(report))
            return
        render.render_terminal(report)
        wrote(out, written, quiet)
