"""`imbalance compare`: two datasets side by side (class, scale, location, foreground) with distances."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import check_out, echo_json, flag, handle_errors, out_option, set_quiet, wrote
from imbalance_cli.data import load
from imbalance_cli.data.spec import LoadSpec
from imbalance_cli.data.splits import has_splits, select_split, split_names, split_of
from imbalance_cli.data.yolo import is_yolo_path
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import compare as render
from imbalance_cli.specs import check_bins, parse_anchors
from imbalance_cli.stats.compare import compare_datasets
from imbalance_cli.stats.geometry import MAX_SCALE_BINS
from imbalance_cli.stats.splits import pick_pair


def _pair(file_a: Path, file_b: Path | None, splits: list[str], spec_for) -> tuple:
    """The two datasets to compare and their names: two files (each one split of a data.yaml when several), or
    two splits of one data.yaml (``--split`` twice, or train vs val); ``spec_for(file)`` is each file's LoadSpec."""
    if len(splits) > 2:
        raise InputError(f"--split is given {len(splits)} times: once (both files) or twice (A, then B)")
    a = load(file_a, spec=spec_for(file_a))
    if file_b is None:
        names = split_names(a)
        if len(splits) == 2:
            pair = splits
        elif len(splits) < 2 and has_splits(a):
            pair = pick_pair(names)
            if splits:
                raise InputError("one file: give --split twice (A, then B), or neither for train vs val", path=file_a)
        else:
            raise InputError("give a second file, or a data.yaml with splits (two of them are compared)", path=file_a)
        return split_of(a, pair[0]), split_of(a, pair[1]), (f"{file_a.name}[{pair[0]}]", f"{file_a.name}[{pair[1]}]")
    b = load(file_b, spec=spec_for(file_b))
    if len(splits) == 1:  # once: the split of each file that has splits (a file without splits is taken whole)
        if not (split_names(a) or split_names(b)):
            raise InputError(f"--split {splits[0]}: neither file has splits (only a data.yaml with train/val has)")
        sa, sb = (splits[0] if split_names(d) else None for d in (a, b))
    else:
        sa, sb = (splits + [None, None])[:2]
    a = select_split(a, sa, default=None)
    b = select_split(b, sb, default=None)
    return a, b, tuple(f.name + (f"[{s}]" if s else "") for f, s in ((file_a, sa), (file_b, sb)))


# long: holds the command's Typer declaration, one flat list of its options
def register(app):
    """Add this module's command(s) to the Typer app."""

    # long: one flat list of the command's options, as Typer declares them
    @app.command("compare")
    @handle_errors
    def compare(
        file_a: Path = typer.Argument(..., help="First annotation file (e.g. train)."),
        file_b: Optional[Path] = typer.Argument(
            None,
            help="Second annotation file (e.g. val, or after resampling); "
            "left out: two splits of FILE_A's data.yaml (train vs val, or the two "
            "--split).",
            show_default=False,
        ),
        anchors: Optional[str] = typer.Option(
            None,
            "--anchors",
            help="Also compare foreground anchors under this preset (retinanet|rpn|ssd300|yolov5|my.toml).",
        ),
        scale_bins: int = typer.Option(50, "--scale-bins", help="Bins of the relative-size histograms on [0, 1]."),
        location_bins: int = typer.Option(20, "--location-bins", help="Bins per axis of the box-centre histogram."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override (both files)."),
        split: Optional[list[str]] = typer.Option(
            None,
            "--split",
            metavar="NAME",
            show_default=False,
            help="Split of a multi-split YOLO data.yaml: once for both files, "
            "twice for A then B (one file: its two splits compared).",
        ),
        json_out: bool = flag("--json", help="Print the imbalance.compare/1 JSON to stdout only."),
        out: Optional[Path] = out_option("compare.json, compare_classes.csv and overlay plots"),
        quiet: bool = flag("--quiet", "-q", help="No progress bars."),
        workers: Optional[int] = typer.Option(
            None,
            "--workers",
            help="Processes decoding JSON chunks (default: all cores); results do not depend on it.",
            show_default=False,
        ),
        no_cache: bool = flag("--no-cache", help="Neither read nor write the columnar cache ($IMBALANCE_CACHE)."),
        yolo_version: Optional[int] = typer.Option(
            None,
            "--yolo-version",
            help="YOLO datasets: count as Ultralytics 8.x reads them (8, default) or as YOLOv5 7.0 does (5).",
            show_default=False,
        ),
    ):
        """Class, scale and location distributions of A and B, their distances (TV, JS, Wasserstein) and overlays.

        Example: imbalance compare instances_train2017.json instances_val2017.json --out cmp/
        """
        set_quiet(quiet)
        inputs = [f for f in (file_a, file_b) if f is not None]
        check_out(out, *inputs, own=render.OWN_FILES)
        spec = LoadSpec.build(format=fmt, workers=workers, cache=not no_cache, yolo_version=yolo_version)
        if not 1 <= scale_bins <= MAX_SCALE_BINS:
            raise InputError(f"--scale-bins must be from 1 to {MAX_SCALE_BINS:,}, got {scale_bins}")
        check_bins("--location-bins", location_bins)
        if yolo_version is not None and not any(is_yolo_path(f) for f in inputs):
            raise InputError("--yolo-version applies to YOLO datasets (data.yaml or a labels folder) only")
        a, b, names = _pair(
            file_a, file_b, list(split or []), lambda f: spec if is_yolo_path(f) else replace(spec, yolo_version=8)
        )
        report = compare_datasets(
            a, b, anchors=parse_anchors(anchors), scale_bins=scale_bins, location_bins=location_bins, names=names
        )
        written = render.write_outputs(report, out) if out is not None else []
        if json_out:
            echo_json(dumps_json(report))
            return
        render.render_terminal(report)
        wrote(out, written, quiet)
