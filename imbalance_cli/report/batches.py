"""Renderer of the ``imbalance.batches/1`` report (``imbalance batches``): terminal summary, CSV, figure.

Files: ``batches.json`` (the report without the per-batch arrays), ``per_batch.csv`` (one row per
batch: instances, distinct classes, TV divergence, foreground share) and ``batches.png`` (their
histograms; survey Oksuz et al., TPAMI 2021, §4.2.2 and Fig. 6).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imbalance_cli import vocabulary
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report._common import new_figure
from imbalance_cli.report.figures import render_figure_list
from imbalance_cli.report.writer import write_report

OWN_FILES = ("batches.json", "per_batch.csv", "batches.png")


def _fmt(v, spec=".3f"):
    return "-" if v is None else format(v, spec)


def render_terminal(r: dict, console=None) -> None:
    """Print the sampler line, the per-batch table and the divergence / group-absence / coverage lines."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(
        f"[bold]{r['sampler']}[/bold] sampler: {batches_text(r)} from "
        f"{r['epochs']} epoch(s) ({r['samples_per_epoch']:.1f} samples/epoch over {r['images']} images, "
        f"seed {r['seed']})"
    )
    t = Table(title="per batch")
    for col in ("statistic", "mean", "p5", "median", "p95", "max"):
        t.add_column(col, justify="left" if col == "statistic" else "right")
    rows = [("instances", r["instances_per_batch"], ".4g"), ("distinct classes", r["coverage"], ".4g")]
    if r["foreground_share"]:  # a share: shown as a percentage, as `imbalance compare` shows it
        rows.append((f"{vocabulary.label('foreground_share')} (%)", r["foreground_share"], ".3%"))
    for name, s, spec in rows:
        t.add_row(name, *(_fmt(s[k], spec) for k in ("mean", "p5", "median", "p95", "max")))
    console.print(t)
    d = r["divergence"]
    console.print(
        f"TV(batch, dataset) class distribution: mean {_fmt(d['mean'])}, p95 {_fmt(d['p95'])}, "
        f"max {_fmt(d['max'])}; all sampled vs dataset {_fmt(d['sampled_vs_dataset_tv'])}"
    )
    ga = r["group_absence"]
    scope = ga.get("frequency_scope") or {}
    bags = "BAGS groups " + ", ".join(f"{k}: {_fmt(v, '.1%')}" for k, v in ga["bags"].items())
    if scope.get("shown") is False:
        console.print(f"batches without any instance of: {bags} (LVIS frequency groups {scope.get('reason')})")
    else:
        source = (
            "the file's LVIS frequency"
            if ga.get("frequency_source") == "file"
            else "LVIS's thresholds on this dataset's image counts"
        )
        console.print(
            "batches without any instance of: "
            + ", ".join(f"LVIS {k} {_fmt(v, '.1%')}" for k, v in ga["frequency"].items())
            + f" ({source}); {bags}"
        )
    console.print(
        f"classes covered per batch: {r['coverage']['mean_fraction_of_used']:.1%} of the "
        f"{r['classes_used']} used classes on average; never sampled: {r['coverage']['classes_never_sampled']}"
    )


def batches_text(r: dict) -> str:
    """``N batches of B`` and what happened to the last, partial batch (kept, or dropped with --drop-last)."""
    text = f"{r['batches']:,} batches of {r['batch_size']}"
    last, dropped = r.get("last_batch_size"), r.get("dropped_samples") or 0
    if dropped:
        text += f" ({dropped} samples of a partial last batch dropped: --drop-last)"
    elif last is not None and last != r["batch_size"]:
        text += f" (the last one partial: {last} images)"
    return text


def figures(report: dict) -> list:
    """Histograms of per-batch class coverage and TV divergence (needs ``keep_per_batch``):
    ``[(name, title, Figure)]``."""
    pb = report["per_batch"]
    n = 3 if pb.get("foreground_share") is not None else 2
    fig = new_figure(4.5 * n, 3.6)
    axes = fig.subplots(1, n)
    axes[0].hist(np.asarray(pb["classes"]), bins=30, color="tab:blue")
    axes[0].set_xlabel("distinct classes per batch")
    axes[0].set_ylabel("batches")
    tv = np.asarray(pb["tv"], dtype=float)
    axes[1].hist(tv[np.isfinite(tv)], bins=30, color="tab:orange")
    axes[1].set_xlabel("TV(batch, dataset) class distribution")
    if n == 3:
        axes[2].hist(100.0 * np.asarray(pb["foreground_share"]), bins=30, color="tab:green")
        axes[2].set_xlabel(f"{vocabulary.label('foreground_share')} per batch (%)")
    for ax in axes[1:]:
        ax.set_ylabel("batches")
    fig.suptitle(f"{report['sampler']} sampler, batch size {report['batch_size']}, {report['epochs']} epoch(s)")
    return [("batches.png", "batch-level imbalance (survey Fig. 6)", fig)]


def report_files(report: dict) -> dict:
    """Every file of the batches directory, rendered in memory: ``{file name: content}``."""
    import pandas as pd

    summary = {k: v for k, v in report.items() if k != "per_batch"}
    files = {"batches.json": dumps_json(summary)}
    if "per_batch" in report:
        pb = {k: v for k, v in report["per_batch"].items() if v is not None}
        files["per_batch.csv"] = pd.DataFrame(pb).rename_axis("batch").to_csv()
        files.update(render_figure_list(figures(report)))
    return files


def write_outputs(report: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write batches.json (without per-batch arrays), per_batch.csv and batches.png (swapped in whole)."""
    return write_report(out_dir, report_files(report), own=OWN_FILES, kind="batches")
