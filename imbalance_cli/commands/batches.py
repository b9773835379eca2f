"""`imbalance batches`: batch-level class imbalance under a sampler (survey §4.2.2, §4.4.3, Fig. 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import (
    check_out,
    echo_json,
    flag,
    handle_errors,
    out_option,
    refuse_inapplicable,
    set_quiet,
    wrote,
)
from imbalance_cli.commands._split import SplitOpt, pick_split
from imbalance_cli.data import load
from imbalance_cli.data.spec import LoadSpec
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import batches as render
from imbalance_cli.specs import parse_anchors
from imbalance_cli.stats.batches import batch_statistics


# long: holds the command's Typer declaration, one flat list of its options
def register(app):
    """Add this module's command(s) to the Typer app."""

    # long: one flat list of the command's options, as Typer declares them
    @app.command("batches")
    @handle_errors
    def batches(
        file: Path = typer.Argument(..., help="Annotation file (COCO/LVIS/Objects365 JSON, Open Images CSV, VOC)."),
        batch_size: int = typer.Option(16, "--batch-size", "-b", help="Images per batch."),
        sampler: str = typer.Option("uniform", "--sampler", help="uniform | repeat-factor | class-aware."),
        epochs: int = typer.Option(1, "--epochs", help="Epochs to draw (the stream is cut into batches)."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        repeat_threshold: Optional[float] = typer.Option(
            None,
            "--repeat-threshold",
            help="Repeat-factor threshold t (--sampler repeat-factor only; default 0.001).",
            show_default=False,
        ),
        anchors: Optional[str] = typer.Option(
            None,
            "--anchors",
            help="Also measure the foreground anchor share per "
            "batch under this preset (retinanet|rpn|ssd300|yolov5|my.toml).",
        ),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override."),
        split: SplitOpt = None,
        drop_last: bool = flag(
            "--drop-last",
            help="Drop the last, partial batch (PyTorch's DataLoader "
            "drop_last=True); by default it is kept and counted.",
        ),
        json_out: bool = flag("--json", help="Print the imbalance.batches/1 JSON to stdout only."),
        out: Optional[Path] = out_option("batches.json, per_batch.csv and batches.png"),
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
        """Per-batch class coverage, frequency-group absence, divergence from the dataset, foreground share.

        Example: imbalance batches lvis_v1_train.json --batch-size 16 --sampler repeat-factor --epochs 2 --seed 0
        """
        set_quiet(quiet)
        check_out(out, file, own=render.OWN_FILES)
        if sampler != "repeat-factor":
            refuse_inapplicable(
                f"to --sampler {sampler} (only repeat-factor sampling has a threshold)",
                repeat_threshold=repeat_threshold is not None,
            )
        dataset = pick_split(
            load(file, spec=LoadSpec.build(format=fmt, workers=workers, cache=not no_cache, yolo_version=yolo_version)),
            split,
            quiet=quiet,
        )
        report = batch_statistics(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            epochs=epochs,
            seed=seed,
            repeat_threshold=0.001 if repeat_threshold is None else repeat_threshold,
            anchors=parse_anchors(anchors),
            keep_per_batch=out is not None,
            drop_last=drop_last,
        )
        written = []
        if out is not None:
            written = render.write_outputs(report, out)
            report = {k: v for k, v in report.items() if k != "per_batch"}
        if json_out:
            echo_json(dumps_json(report))
            return
        render.render_terminal(report)
        wrote(out, written, quiet)
