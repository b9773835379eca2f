"""`imbalance batches`: batch-level class imbalance under a sampler (survey §4.2.2, §4.4.3, Fig. 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet


def register(app):
    """Add this module's command(s) to the Typer app."""

    @app.command("batches")
    @handle_errors
    def batches(
        file: Path = typer.Argument(..., help="Annotation file (COCO/LVIS/Objects365 JSON, Open Images CSV, VOC)."),
        batch_size: int = typer.Option(16, "--batch-size", "-b", help="Images per batch."),
        sampler: str = typer.Option("uniform", "--sampler", help="uniform | repeat-factor | class-aware."),
        epochs: int = typer.Option(1, "--epochs", help="Epochs to draw (the stream is cut into batches)."),
        seed: int = typer.Option(0, "--seed", help="Random seed."),
        repeat_threshold: float = typer.Option(0.001, "--repeat-threshold", help="Repeat-factor threshold t."),
        anchors: Optional[str] = typer.Option(None, "--anchors", help="Also measure the foreground anchor share per "
                                              "batch under this preset (retinanet|rpn|ssd300|my.toml)."),
        fmt: Optional[str] = typer.Option(None, "--format", help="Annotation format override."),
        json_out: bool = typer.Option(False, "--json", help="Print the imbalance.batches/1 JSON to stdout only."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write batches.json, per_batch.csv, batches.png here."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
        workers: Optional[int] = typer.Option(None, "--workers", help="Processes decoding JSON chunks (default: all "
                                              "cores).", show_default=False),
        no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the columnar cache."),
    ):
        """Per-batch class coverage, frequency-group absence, divergence from the dataset, foreground share.

        Example: imbalance batches lvis_v1_train.json --batch-size 16 --sampler repeat-factor --epochs 2 --seed 0
        """
        from imbalance_cli.data import load
        from imbalance_cli.stats.batches import batch_statistics, write_outputs

        from imbalance_cli.data.spec import LoadSpec

        set_quiet(quiet)
        spec = LoadSpec.build(format=fmt, workers=workers, cache=not no_cache)
        dataset = load(file, spec=spec)
        report = batch_statistics(dataset, batch_size=batch_size, sampler=sampler, epochs=epochs, seed=seed,
                                  repeat_threshold=repeat_threshold, anchors=anchors, keep_per_batch=out is not None)
        if out is not None:
            write_outputs(report, out)
            report = {k: v for k, v in report.items() if k != "per_batch"}
        if json_out:
            from imbalance_cli.fileio import dumps_json

            echo_json(dumps_json(report))
            return
        _render(report)
        if out is not None:
            typer.echo(f"wrote {out}/ (batches.json, per_batch.csv, batches.png)")


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def _render(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{r['sampler']}[/bold] sampler: {r['batches']} batches of {r['batch_size']} from "
                  f"{r['epochs']} epoch(s) ({r['samples_per_epoch']:.1f} samples/epoch over {r['images']} images, "
                  f"seed {r['seed']})")
    t = Table(title="per batch")
    for col in ("statistic", "mean", "p5", "median", "p95", "max"):
        t.add_column(col, justify="left" if col == "statistic" else "right")
    rows = [("instances", r["instances_per_batch"]), ("distinct classes", r["coverage"])]
    if r["foreground_share"]:
        rows.append(("foreground anchor share", r["foreground_share"]))
    for name, s in rows:
        t.add_row(name, *(_fmt(s[k], ".4g") for k in ("mean", "p5", "median", "p95", "max")))
    console.print(t)
    d = r["divergence"]
    console.print(f"TV(batch, dataset) class distribution: mean {_fmt(d['mean'])}, p95 {_fmt(d['p95'])}, "
                  f"max {_fmt(d['max'])}; all sampled vs dataset {_fmt(d['sampled_vs_dataset_tv'])}")
    ga = r["group_absence"]
    console.print("batches without any instance of: " + ", ".join(
        f"{k} {_fmt(v, '.1%')}" for k, v in ga["frequency"].items()) + " (LVIS r/c/f); BAGS groups " + ", ".join(
        f"{k}: {_fmt(v, '.1%')}" for k, v in ga["bags"].items()))
    console.print(f"classes covered per batch: {r['coverage']['mean_fraction_of_used']:.1%} of the "
                  f"{r['classes_used']} used classes on average; never sampled: {r['coverage']['classes_never_sampled']}")
