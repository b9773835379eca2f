"""`imbalance bench`: train the detector with several losses and seeds on the same data; one table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imbalance_cli.commands._common import echo_json, handle_errors, set_quiet

TABLE_KEYS = ("AP", "AP50", "APr", "APc", "APf")


def summarize(runs: list[dict], losses: list[str], keys=TABLE_KEYS) -> list[dict]:
    """Mean and sample standard deviation (ddof 1; 0 for one seed) per loss and metric.

    ``runs`` are dicts with ``loss``, ``seed`` and the metric keys (NaN for an undefined metric
    is left out of that metric's mean).
    """
    import numpy as np

    rows = []
    for loss in losses:
        sel = [r for r in runs if r["loss"] == loss]
        row = {"loss": loss, "seeds": len(sel)}
        for k in keys:
            v = np.array([r[k] for r in sel if r.get(k) is not None and r[k] == r[k]], dtype=np.float64)
            row[f"{k}_mean"] = float(v.mean()) if len(v) else float("nan")
            row[f"{k}_std"] = float(v.std(ddof=1)) if len(v) > 1 else 0.0
        rows.append(row)
    return rows


def bench_figure(rows: list[dict], keys=TABLE_KEYS):
    """Grouped bar chart: one group per metric, one bar per loss, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 3.8))
    n = len(rows)
    width = 0.8 / max(n, 1)
    x = np.arange(len(keys))
    for i, r in enumerate(rows):
        ax.bar(x + (i - (n - 1) / 2) * width, [r[f"{k}_mean"] for k in keys], width,
               yerr=[r[f"{k}_std"] for k in keys], label=r["loss"], capsize=2)
    ax.set_xticks(x, keys)
    ax.set_ylabel("held-out AP")
    ax.set_title(f"imbalance bench (mean ± std over {max(r['seeds'] for r in rows) if rows else 0} seeds)")
    ax.legend(fontsize=8, ncol=min(n, 4))
    fig.tight_layout()
    return fig


def bench(
    losses: str = typer.Option("ce,focal,ecm,bags,rs,iou-balanced", "--losses", help="Comma-separated --loss names."),
    seeds: int = typer.Option(3, "--seeds", help="Seeds per loss (0, 1, ...)."),
    epochs: int = typer.Option(10, "--epochs", help="Training epochs of every run."),
    box_loss: Optional[str] = typer.Option(None, "--box-loss", help="Box loss of every run (default: giou).",
                                           show_default=False),
    sampler: str = typer.Option("none", "--sampler", help="Sampler of every run."),
    data: str = typer.Option("synthetic-lt", "--data", help="synthetic-lt or an annotation file."),
    images: Optional[Path] = typer.Option(None, "--images", help="Image folder for --data FILE.", show_default=False),
    anchors: Optional[str] = typer.Option(None, "--anchors", help="Anchor preset (see `imbalance train --help`).",
                                          show_default=False),
    batch_size: int = typer.Option(16, "--batch-size", help="Images per iteration."),
    lr: float = typer.Option(2e-3, "--lr", help="Peak learning rate."),
    train_images: int = typer.Option(1600, "--train-images", help="synthetic-lt training images."),
    val_images: int = typer.Option(400, "--val-images", help="synthetic-lt held-out images."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    out: Path = typer.Option(Path("runs/bench"), "--out", help="Output folder: one sub-folder per run, bench.json, "
                             "bench.csv, bench.png."),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0 = the cores not already busy)."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
):
    """Train every loss with every seed on the same data and print mean ± std of AP, AP50, APr, APc, APf.

    Writes OUT/bench.json, OUT/bench.csv and OUT/bench.png. Runs whose OUT/<loss>-s<seed>/metrics.json already exists with the same settings are reused, so an interrupted bench continues where it stopped.
    """
    set_quiet(quiet)
    import json

    from imbalance_cli.detector.objectives import get_cls_objective
    from imbalance_cli.detector.train import TrainConfig, train as run
    from imbalance_cli.errors import InputError
    from imbalance_cli.fileio import dumps_json, save_figure, write_json, write_text

    names = [s.strip() for s in losses.split(",") if s.strip()]
    if not names:
        raise InputError("--losses is empty")
    for n in names:
        get_cls_objective(n)
    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {seeds}")
    echo = (lambda s: None) if (quiet or json_out) else (lambda s: typer.echo(s, err=True))
    runs = []
    for seed in range(seeds):  # seed-major: an interrupted bench has every loss at the first seeds
        for name in names:
            run_dir = out / f"{name}-s{seed}"
            cfg = TrainConfig(loss=name, box_loss=box_loss, sampler=sampler, data=data,
                              images=str(images) if images else None, anchors=anchors, epochs=epochs,
                              batch_size=batch_size, lr=lr, device=device, out=str(run_dir), seed=seed,
                              train_images=train_images, val_images=val_images, threads=threads,
                              synthetic_dir=str(out / "synthetic-lt"))
            metrics = None
            mpath = run_dir / "metrics.json"
            if mpath.exists():
                try:
                    old = json.loads(mpath.read_text())
                    same = {k: old["settings"].get(k) for k in ("loss", "box_loss", "sampler", "data", "epochs", "batch_size", "lr", "seed", "train_images", "val_images", "anchors")}
                    want = {"loss": name, "box_loss": box_loss or old["settings"].get("box_loss"), "sampler": sampler, "data": data,
                            "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "train_images": train_images,
                            "val_images": val_images, "anchors": old["settings"].get("anchors") if anchors is None else anchors}
                    if same == want:
                        metrics = old
                        echo(f"{name} seed {seed}: reusing {mpath}")
                except (OSError, ValueError, KeyError):
                    metrics = None
            if metrics is None:
                echo(f"{name} seed {seed}: training")
                metrics = run(cfg, echo=echo)
            runs.append({"loss": name, "seed": seed, **{k: metrics[k] for k in TABLE_KEYS},
                         "AP_bins": metrics["AP_bins"], "train_seconds": metrics["timing"]["train_seconds"]})
    rows = summarize(runs, names)
    write_json(out / "bench.json", {"runs": runs, "summary": rows, "epochs": epochs, "seeds": seeds, "data": data})
    header = "loss,seeds," + ",".join(f"{k}_mean,{k}_std" for k in TABLE_KEYS)
    lines = [header] + [f"{r['loss']},{r['seeds']}," + ",".join(f"{r[f'{k}_mean']:.6f},{r[f'{k}_std']:.6f}" for k in TABLE_KEYS) for r in rows]
    write_text(out / "bench.csv", "\n".join(lines) + "\n")
    save_figure(bench_figure(rows), out / "bench.png")
    if json_out:
        echo_json(dumps_json({"runs": runs, "summary": rows}))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"imbalance bench: mean ± std over {seeds} seed(s), {epochs} epochs")
    table.add_column("loss")
    for k in TABLE_KEYS:
        table.add_column(k, justify="right")
    for r in rows:
        table.add_row(r["loss"], *[f"{r[f'{k}_mean']:.3f} ± {r[f'{k}_std']:.3f}" for k in TABLE_KEYS])
    Console().print(table)
    typer.echo(f"wrote {out}/bench.json, bench.csv, bench.png")


def register(app):
    """Add this module's command(s) to the Typer app."""
    app.command("bench")(handle_errors(bench))
