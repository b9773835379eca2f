"""`imbalance groups`: BAGS groups, LVIS r/c/f, repeat factors and class-balanced weights."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("groups")
    @handle_errors
    def groups(
        file: Path = typer.Argument(..., help="Annotation file or an LVIS-style category-statistics JSON."),
        bags_edges: str = typer.Option("0,10,100,1000,inf", "--bags-edges", help="BAGS group edges on training-"
                                       "instance counts (seed 002, Eq. 3)."),
        num_images: Optional[int] = typer.Option(None, "--num-images", help="Image total (needed for repeat factors "
                                                 "with a category-statistics file; LVIS v1 train: 100170)."),
        repeat_threshold: float = typer.Option(0.001, "--repeat-threshold", help="Repeat-factor threshold t."),
        cb_beta: float = typer.Option(0.999, "--cb-beta", help="Class-balanced (effective number) beta in [0, 1)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override."),
        json_out: bool = typer.Option(False, "--json", help="Print the imbalance.groups/1 JSON to stdout only."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write groups.json, classes.csv, bags.json, "
                                           "label2binlabel.pt and pred_slice.pt here."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ):
        """BAGS groups (+ label2binlabel / pred_slice), LVIS r/c/f, repeat factors, class-balanced weights.

        Example: imbalance groups lvis_v1_train_cat_info.json --num-images 100170 --out bags/
        """
        from imbalance_cli.stats.counts import class_counts_from
        from imbalance_cli.stats.groups import long_tail_groups, parse_edges, write_outputs

        set_quiet(quiet)
        edges = parse_edges(bags_edges)
        counts = class_counts_from(file, num_images=num_images, format=fmt)
        report = long_tail_groups(counts, edges=edges, repeat_threshold=repeat_threshold, cb_beta=cb_beta)
        if out is not None:
            write_outputs(report, counts, edges, out)
        if json_out:
            from imbalance_cli.fileio import dumps_json

            echo_json(dumps_json(report))
            return
        _render(report)
        if out is not None:
            typer.echo(f"wrote {out}/ (groups.json, classes.csv, bags.json, label2binlabel.pt, pred_slice.pt)")


def _render(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title=f"BAGS groups ({report['num_classes']} classes; seed 002, Eq. 3)")
    for col in ("group", "instances per class", "classes", "instances"):
        t.add_column(col, justify="right")
    t.add_row("0", "background", "1", "-")
    for g in report["bags"]["groups"]:
        t.add_row(str(g["index"]), f"[{g['range'][0]}, {g['range'][1]})", str(g["classes"]), f"{g['instances']:,}")
    console.print(t)
    f = report["frequency"]
    console.print(f"LVIS frequency from image counts: rare {f['r']}, common {f['c']}, frequent {f['f']}"
                  + (f" ({len(report['frequency_disagreements'])} disagree with the file)"
                     if report["frequency_disagreements"] else ""))
    rf = report["repeat_factors"]
    if rf["per_class"] is None:
        console.print(f"repeat factors: {rf['note']}")
    else:
        vals = [v for v in rf["per_class"].values() if v is not None]
        line = (f"repeat factors (t = {rf['threshold']:g}): {sum(v > 1 for v in vals)} classes repeated, "
                f"max r = {max(vals) if vals else 1:.3g}; ")
        if rf["expected_epoch_images"] is not None:
            line += f"expected epoch {rf['expected_epoch_images']:,.1f} images (of {rf['num_images']:,})"
        else:
            lo, hi = rf["expected_epoch_images_bounds"]
            line += f"expected epoch between {lo:,.0f} and {hi:,.0f} images (of {rf['num_images']:,})"
        console.print(line)
    cb = [v for v in report["class_balanced"]["normalized"].values() if v is not None]
    if cb:
        console.print(f"class-balanced weights (beta = {report['class_balanced']['beta']:g}, normalised): "
                      f"min {min(cb):.3g}, max {max(cb):.3g}")
