"""`imbalance margins`: Effective Class-Margins (seed 003) per class, from annotations or category statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("margins")
    @handle_errors
    def margins(
        file: Path = typer.Argument(..., help="Annotation file (COCO/LVIS/...) or an LVIS-style category-statistics "
                                    "JSON with instance_count/image_count (e.g. lvis_v1_train_cat_info.json)."),
        fg_bg_ratio: Optional[float] = typer.Option(None, "--fg-bg-ratio", help="Background/foreground ratio r of the "
                                                    "classification layer (ECM's LVIS value: 6.3313). n_bg = r * sum n_c."),
        anchors: Optional[str] = typer.Option(None, "--anchors", help="Measure r as background/foreground anchors of "
                                              "this preset (retinanet|rpn|ssd300|my.toml); needs a full annotation file."),
        one_stage: bool = typer.Option(False, "--one-stage", help="Leave the background out (one-stage detectors, "
                                       "seed 003 supp. F)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override (coco|lvis|openimages|"
                                          "objects365|voc)."),
        top: int = typer.Option(15, "--top", help="Rows of the terminal table at each end (rarest and most frequent)."),
        json_out: bool = typer.Option(False, "--json", help="Print the imbalance.margins/1 JSON to stdout only."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write margins.json, margins.csv, instance_counts.json, "
                                           "ecm_counts.json and figures (Figs. 4/7) here."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    ):
        """ECM margins gamma+-, weights w+-, log-margins m+- and detection weight per class and background.

        Example: imbalance margins lvis_v1_train_cat_info.json --fg-bg-ratio 6.3313 --out margins/
        """
        from imbalance_cli.errors import InputError
        from imbalance_cli.stats.counts import class_counts_from
        from imbalance_cli.stats.margins import effective_class_margins, measured_fg_bg_ratio, write_outputs

        set_quiet(quiet)
        if anchors is not None and fg_bg_ratio is not None:
            raise InputError("give either --fg-bg-ratio or --anchors, not both")
        if anchors is not None and one_stage:
            raise InputError("--one-stage leaves the background out: do not combine it with --anchors")
        if top < 0:
            raise InputError(f"--top must be >= 0, got {top}")
        counts = class_counts_from(file, format=fmt)
        source = None if fg_bg_ratio is None else "option"
        if anchors is not None:
            if counts.dataset is None:
                raise InputError("--anchors needs a full annotation file (boxes per image); with category "
                                 "statistics pass --fg-bg-ratio R", path=file)
            fg_bg_ratio, _ = measured_fg_bg_ratio(counts.dataset, anchors=anchors)
            source = f"anchors:{anchors}"
        report = effective_class_margins(counts, fg_bg_ratio=fg_bg_ratio, one_stage=one_stage, ratio_source=source)
        if out is not None:
            write_outputs(report, out)
        if json_out:
            from imbalance_cli.fileio import dumps_json

            echo_json(dumps_json(report))
            return
        _render(report, top)
        if out is not None:
            typer.echo(f"wrote {out}/ (margins.json, margins.csv, instance_counts.json, ecm_counts.json, figures)")


def _render(report: dict, top: int) -> None:
    from rich.console import Console
    from rich.table import Table

    import sys

    console = Console(width=None if sys.stdout.isatty() else 150)
    if report["one_stage"]:
        head = "one-stage: background left out"
    else:
        head = f"fg/bg ratio r = {report['fg_bg_ratio']:.6g} ({report['fg_bg_ratio_source'] or 'given'})"
    t = Table(title=f"ECM margins: {report['num_classes']} classes, {report['total_instances']} instances; {head}")
    for col in ("id", "name", "n+", "n-", "γ+", "γ-", "w+", "w-", "m+", "m-", "weight"):
        t.add_column(col, justify="left" if col == "name" else "right")

    def row(r, cid, name):
        t.add_row(cid, name, f"{r.get('instances', r['n_pos']):.0f}", f"{r['n_neg']:.0f}", *(f"{r[k]:.4g}" for k in
                  ("gamma_pos", "gamma_neg", "w_pos", "w_neg", "m_pos", "m_neg", "weight")))

    cls = sorted(report["classes"], key=lambda r: (r["n_pos"], r["id"]))
    shown = cls if len(cls) <= 2 * top else cls[:top] + [None] + cls[-top:]
    for r in shown:
        if r is None:
            t.add_row("…", f"({len(cls) - 2 * top} more)", *[""] * 9)
        else:
            row(r, str(r["id"]), r["name"])
    if report["background"]:
        row(report["background"], "-", "background")
    console.print(t)
