"""`imbalance margins`: Effective Class-Margins (Cho & Kraehenbuehl, ECCV 2022) per class, from annotations or
category statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.anchors.yolov5_schema import refuse_yolov5
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
from imbalance_cli.commands._split import SplitOpt, split_note
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import margins as render
from imbalance_cli.stats.counts import class_counts_from
from imbalance_cli.stats.margins import effective_class_margins, measured_fg_bg_ratio


def _check_options(anchors: Optional[str], fg_bg_ratio: Optional[float], one_stage: bool, top: int) -> None:
    """Refuse option combinations that cannot apply, before anything is loaded."""
    if anchors is not None and fg_bg_ratio is not None:
        raise InputError("give either --fg-bg-ratio or --anchors, not both")
    if one_stage:  # the background is left out, so no background ratio can apply
        refuse_inapplicable(
            "with --one-stage (it leaves the background out, so no background ratio is used)",
            anchors=anchors is not None,
            fg_bg_ratio=fg_bg_ratio is not None,
        )
    if top < 0:
        raise InputError(f"--top must be >= 0, got {top}")
    refuse_yolov5(
        anchors,
        "margins",
        "ECM's background ratio is measured from IoU-matched background anchors, "
        "which YOLOv5's ratio-test assignment does not define; use an IoU preset (retinanet, rpn, "
        "ssd300, a grid TOML) or --fg-bg-ratio",
    )


# long: holds the command's Typer declaration, one flat list of its options
def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("margins")
    @handle_errors
    def margins(
        file: Path = typer.Argument(
            ...,
            help="Annotation file (COCO/LVIS/...) or an LVIS-style category-statistics "
            "JSON with instance_count/image_count (e.g. lvis_v1_train_cat_info.json).",
        ),
        fg_bg_ratio: Optional[float] = typer.Option(
            None,
            "--fg-bg-ratio",
            help="Background per foreground anchor, r, of the "
            "classification layer (ECM's LVIS value: 6.3313). n_bg = r * sum n_c.",
        ),
        anchors: Optional[str] = typer.Option(
            None,
            "--anchors",
            help="Measure r (background per foreground anchor) with "
            "this preset (retinanet|rpn|ssd300|my.toml); needs a full annotation file.",
        ),
        one_stage: bool = flag(
            "--one-stage",
            help="Leave the background out (one-stage detectors, Cho & Kraehenbuehl, ECCV 2022, supp. F).",
        ),
        fmt: Optional[str] = typer.Option(
            None, "--format", help="Annotation format override (coco|lvis|openimages|objects365|voc)."
        ),
        split: SplitOpt = None,
        top: int = typer.Option(15, "--top", help="Rows of the terminal table at each end (rarest and most frequent)."),
        json_out: bool = flag("--json", help="Print the imbalance.margins/1 JSON to stdout only."),
        out: Optional[Path] = out_option(
            "margins.json, margins.csv, instance_counts.json, ecm_counts.json and figures (Figs. 4/7)"
        ),
        quiet: bool = flag("--quiet", "-q", help="No progress bars."),
    ):
        """ECM margins gamma+-, weights w+-, log-margins m+- and detection weight per class and background.

        Example: imbalance margins lvis_v1_train_cat_info.json --fg-bg-ratio 6.3313 --out margins/
        """
        set_quiet(quiet)
        check_out(out, file, own=render.OWN_FILES)
        _check_options(anchors, fg_bg_ratio, one_stage, top)
        counts = class_counts_from(file, format=fmt, split=split, note=None if quiet else split_note)
        source = None if fg_bg_ratio is None else "option"
        if anchors is not None:
            if counts.dataset is None:
                raise InputError(
                    "--anchors needs a full annotation file (boxes per image); with category "
                    "statistics pass --fg-bg-ratio R",
                    path=file,
                )
            fg_bg_ratio, _ = measured_fg_bg_ratio(counts.dataset, anchors=anchors)
            source = f"anchors:{anchors}"
        report = effective_class_margins(counts, fg_bg_ratio=fg_bg_ratio, one_stage=one_stage, ratio_source=source)
        written = render.write_outputs(report, out) if out is not None else []
        if json_out:
            echo_json(dumps_json(report))
            return
        render.render_terminal(report, top)
        wrote(out, written, quiet)
