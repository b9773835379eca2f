"""Renderer of the ``imbalance.compare/1`` report (``imbalance compare``): terminal table, CSV, overlay figures.

Files: ``compare.json`` (the report), ``compare_classes.csv`` (one row per category: instances and
shares in A and B), ``compare_classes.png`` (class shares sorted by A), ``compare_scale.png``
(relative-size histograms overlaid, with W1) and ``compare_location.png`` (centre heat maps of A,
B and B - A).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imbalance_cli.fileio import dumps_json
from imbalance_cli.report._common import ALL_NAMES_MAX, name_classes, new_figure
from imbalance_cli.report.figures import render_figure_list
from imbalance_cli.report.writer import write_report

SCALE_KEYS = ("relative_width", "relative_height", "relative_area")
SCALE_LABELS = {
    "relative_width": "relative width w / W",
    "relative_height": "relative height h / H",
    "relative_area": "relative area √(wh / WH)",
}
OWN_FILES = ("compare.json", "compare_classes.csv", "compare_*.png")


def _f(v, spec=".4f"):
    return "-" if v is None else format(v, spec)


def render_terminal(r: dict, console=None) -> None:
    """Print A vs B: sizes, class/scale/location distances and (with anchors) the foreground share."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    t = Table(title=escape(f"A = {r['a']['name']}  vs  B = {r['b']['name']}"))  # "data.yaml[val]" is no markup
    for col in ("distribution", "A", "B", "distance"):
        t.add_column(col, justify="left" if col == "distribution" else "right")
    t.add_row(
        "images / valid boxes", f"{r['a']['images']} / {r['a']['boxes']}", f"{r['b']['images']} / {r['b']['boxes']}", ""
    )
    c = r["classes"]
    t.add_row(
        f"classes (instances, paired by {c.get('paired_by', 'id')})",
        f"{sum(x['instances_a'] > 0 for x in c['per_class'])} used",
        f"{sum(x['instances_b'] > 0 for x in c['per_class'])} used",
        f"TV {_f(c['tv'])}, JS {_f(c['js'])}",
    )
    for key, s in r["scale"].items():
        t.add_row(key.replace("_", " "), "", "", f"W1 {_f(s['wasserstein'])}, TV {_f(s['tv'])}")
    t.add_row("box centres", "", "", f"TV {_f(r['location']['tv'])}")
    if r["anchors"]:
        an = r["anchors"]
        t.add_row(
            "foreground anchor share",
            _f(an["foreground_share_a"], ".3%"),
            _f(an["foreground_share_b"], ".3%"),
            f"per-class positives TV {_f(an['per_class_positive_tv'])}",
        )
    console.print(t)
    if c["only_in_a"] or c["only_in_b"]:
        names_a = {x.get("id_a", x["id"]): x["name"] for x in c["per_class"]}
        names_b = {x.get("id_b", x["id"]): x["name"] for x in c["per_class"]}

        def listed(ids, names):
            shown = ", ".join(str(names.get(i, i)) for i in ids[:8])
            return f"{len(ids)}" + (f" ({shown}{', ...' if len(ids) > 8 else ''})" if ids else "")

        console.print(
            f"classes only in A: {listed(c['only_in_a'], names_a)}; only in B: {listed(c['only_in_b'], names_b)}"
        )


def figures(report: dict) -> list:
    """Overlay plots ``[(filename, title, Figure)]``: class shares (sorted by A), scale histograms, location maps."""
    na, nb = report["a"]["name"], report["b"]["name"]
    out = []
    per = report["classes"]["per_class"]
    order = sorted(per, key=lambda r: -r["instances_a"])
    fig = new_figure(12, 4.8)
    ax = fig.subplots()
    x = np.arange(1, len(order) + 1)  # rank 1 = most instances in A
    ax.plot(x, [r["share_a"] or np.nan for r in order], "o-", ms=3, lw=1, label=na, color="tab:blue")
    ax.plot(x, [r["share_b"] or np.nan for r in order], "s-", ms=3, lw=1, label=nb, color="tab:orange", alpha=0.8)
    ax.set_yscale("log")
    ax.set_xlabel(
        f"class, sorted by instances in A ({na})"
        if len(order) <= ALL_NAMES_MAX
        else f"class rank by instances in A ({na}; {len(order)} classes)"
    )
    ax.set_ylabel("share of the dataset's instances (log scale)")
    ax.set_title(f"Class distributions of A and B (TV = {report['classes']['tv'] or 0:.3f})", loc="left")
    name_classes(ax, [r["name"] for r in order], [max(r["share_a"] or 0, r["share_b"] or 0) for r in order], x0=1)
    ax.legend(fontsize=8)
    out.append(("compare_classes.png", "Class distributions", fig))

    fig = new_figure(13, 3.6)
    axes = fig.subplots(1, 3)
    for ax, key in zip(axes, SCALE_KEYS):
        s = report["scale"][key]
        e = np.asarray(s["edges"])
        for counts, lab, col in ((s["counts_a"], na, "tab:blue"), (s["counts_b"], nb, "tab:orange")):
            c = np.asarray(counts, dtype=float)
            ax.stairs(c / max(c.sum(), 1), e, label=lab, color=col)
        w = s["wasserstein"]
        ax.set_title(f"{key.replace('_', ' ')} (W1 = {w if w is not None else float('nan'):.3f})")
        ax.set_xlabel(SCALE_LABELS[key])
        ax.set_ylabel("share of the dataset's boxes")
        ax.legend(fontsize=8)
    fig.suptitle(f"Box sizes relative to the image: A = {na}, B = {nb}")
    out.append(("compare_scale.png", "Scale distributions", fig))

    fig = new_figure(13, 4)
    axes = fig.subplots(1, 3)
    la = np.asarray(report["location"]["counts_a"], dtype=float)
    lb = np.asarray(report["location"]["counts_b"], dtype=float)
    la_n = la / max(la.sum(), 1)
    lb_n = lb / max(lb.sum(), 1)
    for ax, m, title in ((axes[0], la_n, "A"), (axes[1], lb_n, "B")):
        im = ax.imshow(m, origin="upper", extent=(0, 1, 1, 0), cmap="viridis")
        ax.set_title(f"box centres of {title}")
        fig.colorbar(im, ax=ax, fraction=0.046, label="share of boxes per cell")
    d = lb_n - la_n
    lim = max(np.abs(d).max(), 1e-12)
    im = axes[2].imshow(d, origin="upper", extent=(0, 1, 1, 0), cmap="coolwarm", vmin=-lim, vmax=lim)
    axes[2].set_title(f"B - A (TV = {report['location']['tv'] or 0:.3f})")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="share in B - share in A")
    for ax in axes:
        ax.set_xlabel("x / W (centre)")
        ax.set_ylabel("y / H (centre; 0 = top)")
    fig.suptitle(f"Box centres over the normalised image: A = {na}, B = {nb}")
    out.append(("compare_location.png", "Location distributions", fig))
    return out


def report_files(report: dict, plots: bool = True) -> dict:
    """Every file of the compare directory, rendered in memory: ``{file name: content}``."""
    import pandas as pd

    files = {
        "compare.json": dumps_json(report),
        "compare_classes.csv": pd.DataFrame(report["classes"]["per_class"]).to_csv(index=False),
    }
    if plots:
        files.update(render_figure_list(figures(report)))
    return files


def write_outputs(report: dict, out_dir: str | os.PathLike, plots: bool = True) -> list[Path]:
    """Write compare.json, compare_classes.csv and the overlay figures; the directory is swapped in whole."""
    return write_report(out_dir, report_files(report, plots), own=OWN_FILES, kind="compare")
