"""Renderer of the ``imbalance.margins/1`` report (``imbalance margins``): terminal table, exports, figures.

Files: ``margins.json`` (the report), ``margins.csv`` (one row per class, background last),
``instance_counts.json`` (per-category instance counts as a bare JSON list in category-id order, the
form the reference ECM code reads), ``ecm_counts.json`` (``imbalance.ecm_counts/1``, which
:func:`imbalance_cli.stats.margins.load_ecm_counts` reads for the project's ECM loss) and the figures
``margins_vs_ratio.png`` / ``weights_sorted.png`` (Cho & Kraehenbuehl, Effective Class-Margins,
ECCV 2022, Figs. 4 and 7).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from imbalance_cli import vocabulary
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report._common import new_figure
from imbalance_cli.report.figures import render_figure_list
from imbalance_cli.report.writer import write_report
from imbalance_cli.stats.margins import ecm_counts, margins_table

OWN_FILES = (
    "margins.json",
    "margins.csv",
    "instance_counts.json",
    "ecm_counts.json",
    "margins_vs_ratio.png",
    "weights_sorted.png",
)


def render_terminal(report: dict, top: int = 15, console=None) -> None:
    """Print the margins table: the ``top`` rarest and most frequent classes, then the background row."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 150)
    t = Table(title=f"ECM margins: {header_text(report)}")
    for col in ("id", "name", "n+", "n-", "γ+", "γ-", "w+", "w-", "m+", "m-", "weight"):
        t.add_column(col, justify="left" if col == "name" else "right")

    def row(r, cid, name):
        t.add_row(
            cid,
            name,
            f"{r.get('instances', r['n_pos']):.0f}",
            f"{r['n_neg']:.0f}",
            *(f"{r[k]:.4g}" for k in ("gamma_pos", "gamma_neg", "w_pos", "w_neg", "m_pos", "m_neg", "weight")),
        )

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


def header_text(report: dict) -> str:
    """Classes, instances (true counts and, when they differ, the formulas' count) and the background ratio."""
    text = f"{report['num_classes']} classes, {report['total_instances']:,} instances"
    formula = report.get("formula_instances")
    if formula is not None and formula != report["total_instances"]:
        empty = report.get("empty_classes") or formula - report["total_instances"]
        text += (
            f" ({formula:,} {vocabulary.label('formula_instances')}: {empty} class"
            f"{'es' if empty != 1 else ''} without instances count as one)"
        )
    if report["one_stage"]:
        return text + "; one-stage: background left out"
    return (
        text + f"; {vocabulary.label('fg_bg_ratio')} = {report['fg_bg_ratio']:.6g} "
        f"({report['fg_bg_ratio_source'] or 'given'})"
    )


def figures(report: dict) -> list:
    """Matplotlib figures re-drawing Figs. 4 and 7 of Cho & Kraehenbuehl (Effective
    Class-Margins, ECCV 2022) for this dataset.

    Returns ``[(filename, title, Figure)]``: ``margins_vs_ratio.png`` (margins gamma+- and weights
    w+- against the negative-to-positive ratio a_c = n-/n+, curves of Eq. 8/11 with this dataset's
    classes as points, Fig. 4) and ``weights_sorted.png`` (w+ and w- per class sorted ascending, Fig. 7).
    """
    cls = [r for r in report["classes"] if r["n_pos"] > 0]
    n_pos = np.array([r["n_pos"] for r in cls], dtype=float)
    n_neg = np.array([r["n_neg"] for r in cls], dtype=float)
    a = n_neg / n_pos
    return [_ratio_figure(cls, a), _sorted_weights_figure(report, cls)]


def _ratio_figure(cls: list, a: np.ndarray) -> tuple:
    """Fig. 4: margins and weights against the class ratio a_c, the Eq. 8 / Eq. 11 curves and the classes as points."""
    fig = new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    lo, hi = max(a.min() / 2, 1e-3) if len(a) else 1e-1, a.max() * 2 if len(a) else 1e6
    grid = np.logspace(np.log10(lo), np.log10(hi), 400)
    g_pos = grid**0.25 / (1 + grid**0.25)  # Eq. 8 with n- = a n+
    ax1.plot(grid, g_pos, color="tab:blue", label=r"$\gamma^+$")
    ax1.plot(grid, 1 - g_pos, color="tab:red", label=r"$\gamma^-$")
    if len(a):
        ax1.scatter(a, [r["gamma_pos"] for r in cls], s=8, color="tab:blue", alpha=0.5)
        ax1.scatter(a, [r["gamma_neg"] for r in cls], s=8, color="tab:red", alpha=0.5)
    ax1.set_xscale("log")
    ax1.set_xlabel(r"negative-to-positive ratio $\alpha_c = n_{-c}/n_c$")
    ax1.set_ylabel("margin")
    ax1.set_title("class margins (Eq. 8)")
    ax1.legend()
    ax2.plot(grid, 1 / g_pos, color="tab:blue", label=r"$w^+$")
    ax2.plot(grid, 1 / (1 - g_pos), color="tab:red", label=r"$w^-$")
    if len(a):
        ax2.scatter(a, [r["w_pos"] for r in cls], s=8, color="tab:blue", alpha=0.5)
        ax2.scatter(a, [r["w_neg"] for r in cls], s=8, color="tab:red", alpha=0.5)
    ax2.set_xscale("log")
    ax2.set_yscale("log")
    ax2.set_xlabel(r"negative-to-positive ratio $\alpha_c$")
    ax2.set_ylabel("weight")
    ax2.set_title("surrogate-score weights (Eq. 11)")
    ax2.legend()
    return (
        "margins_vs_ratio.png",
        "ECM margins and weights against the class ratio (Cho & Kraehenbuehl, ECCV 2022, Fig. 4)",
        fig,
    )


def _sorted_weights_figure(report: dict, cls: list) -> tuple:
    """Fig. 7: the classes' positive and negative weights, each sorted ascending."""
    fig = new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    wp = np.sort([r["w_pos"] for r in cls])
    wn = np.sort([r["w_neg"] for r in cls])
    ax1.plot(np.arange(len(wp)), wp, color="tab:blue")
    ax1.set_title(r"positive weights $w_c^+$ (sorted)")
    ax1.set_xlabel("class (sorted)")
    ax2.plot(np.arange(len(wn)), wn, color="tab:red")
    ax2.set_yscale("log")
    ax2.set_title(r"negative weights $w_c^-$ (sorted)")
    ax2.set_xlabel("class (sorted)")
    ratio = report["fg_bg_ratio"]
    fig.suptitle(
        "one-stage (no background)" if report["one_stage"] else f"{vocabulary.label('fg_bg_ratio')} = {ratio:.4g}"
    )
    return "weights_sorted.png", "ECM weights per class, sorted (Cho & Kraehenbuehl, ECCV 2022, Fig. 7)", fig


def report_files(report: dict, plots: bool = True) -> dict:
    """Every file of the margins directory, rendered in memory: ``{file name: content}``."""
    files = {
        "margins.json": dumps_json(report),
        "margins.csv": margins_table(report).to_csv(index=False),
        "instance_counts.json": dumps_json([r["instances"] for r in report["classes"]]),
        "ecm_counts.json": dumps_json(ecm_counts(report)),
    }
    if plots:
        files.update(render_figure_list(figures(report)))
    return files


def write_outputs(report: dict, out_dir: str | os.PathLike, plots: bool = True) -> list[Path]:
    """Write margins.json, margins.csv, instance_counts.json, ecm_counts.json and the figures (swapped in whole)."""
    return write_report(out_dir, report_files(report, plots), own=OWN_FILES, kind="margins")
