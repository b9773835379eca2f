"""`imbalance groups`: BAGS groups, LVIS r/c/f, repeat factors and class-balanced weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import check_out, echo_json, flag, handle_errors, out_option, set_quiet, wrote
from imbalance_cli.commands._split import SplitOpt, split_note
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import groups as render
from imbalance_cli.stats.counts import class_counts_from
from imbalance_cli.stats.groups import bags_mappings, long_tail_groups, parse_edges


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("groups")
    @handle_errors
    def groups(
        file: Path = typer.Argument(..., help="Annotation file or an LVIS-style category-statistics JSON."),
        bags_edges: str = typer.Option(
            "0,10,100,1000,inf",
            "--bags-edges",
            help="BAGS group edges on training-instance counts (Li et al., CVPR 2020, Eq. 3).",
        ),
        num_images: Optional[int] = typer.Option(
            None,
            "--num-images",
            help="Image total (needed for repeat factors with a category-statistics file; LVIS v1 train: 100170).",
        ),
        repeat_threshold: float = typer.Option(0.001, "--repeat-threshold", help="Repeat-factor threshold t."),
        cb_beta: float = typer.Option(0.999, "--cb-beta", help="Class-balanced (effective number) beta in [0, 1)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override."),
        split: SplitOpt = None,
        json_out: bool = flag("--json", help="Print the imbalance.groups/1 JSON to stdout only."),
        out: Optional[Path] = out_option("groups.json, classes.csv, bags.json, label2binlabel.pt and pred_slice.pt"),
        quiet: bool = flag("--quiet", "-q", help="No progress bars."),
    ):
        """BAGS groups (+ label2binlabel / pred_slice), LVIS r/c/f, repeat factors, class-balanced weights.

        Example: imbalance groups lvis_v1_train_cat_info.json --num-images 100170 --out bags/
        """
        set_quiet(quiet)
        check_out(out, file, own=render.OWN_FILES)
        edges = parse_edges(bags_edges)
        counts = class_counts_from(
            file, num_images=num_images, format=fmt, split=split, note=None if quiet else split_note
        )
        report = long_tail_groups(counts, edges=edges, repeat_threshold=repeat_threshold, cb_beta=cb_beta)
        written = []
        if out is not None:
            label2binlabel, pred_slice = bags_mappings(counts, edges)
            written = render.write_outputs(report, out, label2binlabel, pred_slice)
        if json_out:
            echo_json(dumps_json(report))
            return
        render.render_terminal(report)
        wrote(out, written, quiet)
