"""PNG figures re-drawing the survey's dataset statistics (Oksuz et al., Imbalance Problems in Object Detection,
TPAMI 2021: Figs. 5, 7 and 13).

* Fig. 5a: instances per class, classes sorted by instances, log-scale y (with images per
  class and the LVIS rare/common thresholds on image counts);
* Fig. 5b / 5c: number of images vs number of objects / classes in an image, log-scale y;
* Fig. 7: distributions of relative box width, height and area (w/W, h/H, sqrt(wh/WH)),
  log-scale y, plus the COCO size groups (small < 32^2, medium < 96^2, large);
* Fig. 13: heat map of box centres over the normalised image (rows = y, top of the image on
  top), and small multiples per class when the report carries them.

Anchor figures (Figs. 4, 12a, 14) come from :mod:`imbalance_cli.report.anchor_figures` when the
report has ``anchors``.

matplotlib is imported lazily and only the Agg canvas is used (no pyplot state, no display).
"""

from __future__ import annotations

import io
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from imbalance_cli import progress
from imbalance_cli.report import anchor_figures
from imbalance_cli.report._common import (
    name_classes,
    names_fontsize,
    names_margin,
    new_figure,
    num,
    place,
    plain,
    shown_names,
)
from imbalance_cli.report.tables import (
    FREQUENCY_LABELS,
    fmt_num,
    histogram_bins,
    location_summary,
    lvis_groups_shown,
    size_groups_label,
    size_groups_note,
    sorted_classes,
)

#: Colours of the LVIS frequency groups in Fig. 5a.
FREQUENCY_COLORS = {"r": "#d62728", "c": "#ff7f0e", "f": "#1f77b4"}
_NEUTRAL = "#4c72b0"


@dataclass
class RenderedFigure:
    """A figure rendered to PNG bytes, with the file name, title and caption the HTML uses."""

    filename: str
    title: str
    caption: str
    png: bytes


def _plain(text: Any) -> str:
    """Text shown literally by matplotlib (:func:`imbalance_cli.report._common.plain`)."""
    return plain(text)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _log_y(ax, values) -> None:
    """A log y axis when any value is positive, major ticks only (minor ticks cost a tenth of the drawing)."""
    if any(num(v) > 0 for v in values):
        from matplotlib.ticker import NullLocator

        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())


# --------------------------------------------------------------------------------------
# Fig. 5a
# --------------------------------------------------------------------------------------
def class_long_tail_figure(report: dict):
    """Survey Fig. 5a: instances per class, sorted, log-scale y; images per class as dots.

    Bars are coloured by the LVIS frequency group (LVIS's thresholds on image counts: rare <= 10
    images, common 11-100, frequent > 100) when the report gives it and its ``frequency_scope``
    does not hide it (a dataset far smaller than LVIS). Classes with no instance cannot appear on
    a log axis; their number is written in the plot.
    """
    classes = sorted_classes(report)
    n = len(classes)
    width = 12.0 if n <= 80 else 13.0
    names = [c.get("name", c.get("id", "")) for c in classes]
    below = names_margin(shown_names(names), names_fontsize(n) if n <= 100 else 6.5)
    fig = new_figure(width, 3.6 + below, constrained=False)
    ax = fig.add_subplot()
    place(fig, left=0.75, right=0.2, top=0.45, bottom=below)
    ax.set_title("Instances per class, classes sorted by instances", fontsize=11, loc="left")
    instances = [num(c.get("instances")) for c in classes]
    images = [num(c.get("images")) for c in classes]
    if not classes or max(instances, default=0) <= 0:
        _empty(ax, "no valid boxes")
        return fig
    x = list(range(1, n + 1))
    freqs = [c.get("frequency") if lvis_groups_shown(report) else None for c in classes]
    colors = [FREQUENCY_COLORS.get(f, _NEUTRAL) for f in freqs]
    ax.bar(
        x, [v if v > 0 else float("nan") for v in instances], width=0.85 if n <= 200 else 1.0, color=colors, linewidth=0
    )
    has_images = any(v > 0 for v in images)
    if has_images:
        ax.plot(
            x,
            [v if v > 0 else float("nan") for v in images],
            linestyle="none",
            marker="o",
            markersize=2.5 if n <= 200 else 1.2,
            color="black",
            alpha=0.75,
        )
    _log_y(ax, instances)
    top = max(instances + images + ([100.5] if any(f in FREQUENCY_COLORS for f in freqs) else []))
    ax.set_ylim(0.75, top * 1.8)
    ax.set_ylabel("count (log scale)")
    ax.set_xlim(0.3, n + 0.7)
    ax.grid(axis="y", which="major", color="0.85", linewidth=0.6)
    ax.set_axisbelow(True)
    # classes named on the axis: all up to 100, else the extremes at their bars
    name_classes(ax, names, instances, x0=1)
    ax.set_xlabel("class (sorted by instances)" if n <= 100 else f"class rank (1 = most instances; {n} classes)")

    _long_tail_legend(ax, freqs, has_images, instances)
    return fig


def _long_tail_legend(ax, freqs: list, has_images: bool, instances: list) -> None:
    """The long-tail figure's legend, LVIS threshold lines when groups are shown, and the count of empty classes."""
    present = [f for f in ("f", "c", "r") if f in freqs]
    handles = _long_tail_handles(present, has_images)
    if present:
        _lvis_threshold_lines(ax)
    ax.legend(
        handles=handles,
        loc="lower right",
        fontsize=8,
        frameon=False,
        ncol=len(handles),
        bbox_to_anchor=(1.0, 1.0),
        borderaxespad=0.2,
        handlelength=1.2,
        columnspacing=1.2,
    )
    unused = sum(1 for v in instances if v <= 0)
    if unused:
        ax.text(
            0.99,
            0.62,
            f"{unused} class{'es' if unused != 1 else ''} with 0 instances (not drawn)",
            ha="right",
            transform=ax.transAxes,
            fontsize=8,
            color="#d62728",
        )


def _long_tail_handles(present: list, has_images: bool) -> list:
    """Legend handles of the long-tail figure: a patch per LVIS group ``present`` (or one neutral), the image dots."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = []
    for f in present:
        handles.append(Patch(color=FREQUENCY_COLORS[f], label=f"instances — LVIS {FREQUENCY_LABELS[f]}"))
    if not present:
        handles.append(Patch(color=_NEUTRAL, label="instances"))
    if has_images:
        handles.append(
            Line2D(
                [], [], linestyle="none", marker="o", markersize=4, color="black", label="images containing the class"
            )
        )
    return handles


def _lvis_threshold_lines(ax) -> None:
    """Dashed lines at LVIS's rare and common thresholds on image counts (10 and 100 images), labelled."""
    for y, label in ((10, "LVIS rare ≤ 10 images"), (100, "LVIS common ≤ 100 images")):
        ax.axhline(y + 0.5, color="0.45", linestyle="--", linewidth=0.8)
        ax.annotate(
            label,
            xy=(1.0, y + 0.5),
            xycoords=("axes fraction", "data"),
            xytext=(-4, -2),
            textcoords="offset points",
            ha="right",
            va="top",
            fontsize=7.5,
            color="0.3",
        )


# --------------------------------------------------------------------------------------
# Fig. 5b / 5c
# --------------------------------------------------------------------------------------
def per_image_figure(hist: dict, what: str, panel: str):
    """Survey Fig. 5b/5c: number of images vs number of ``what`` per image, log-scale y."""
    fig = new_figure(6.0, 3.8, constrained=False)
    ax = fig.add_subplot()
    place(fig, left=0.8, right=0.2, top=0.4, bottom=0.6)
    ax.set_title(f"({panel}) Images vs number of {what} in an image", fontsize=11)
    bins = histogram_bins(hist)
    counts = [c for _, _, c in bins]
    if not bins or sum(counts) <= 0:
        _empty(ax, "no images")
        return fig
    _bars(ax, bins, color=_NEUTRAL)
    _log_y(ax, counts)
    ax.set_xlabel(f"{what} per image")
    ax.set_ylabel("images (log scale)")
    ax.grid(axis="y", color="0.85", linewidth=0.6)
    ax.set_axisbelow(True)
    mean = hist.get("mean")
    if mean is not None and math.isfinite(num(mean)):
        ax.axvline(num(mean), color="#d62728", linestyle="--", linewidth=1)
        ax.annotate(
            f"mean {fmt_num(mean)}",
            xy=(num(mean), 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(4, -12),
            textcoords="offset points",
            color="#d62728",
            fontsize=8,
        )
    if hist.get("max") is not None:
        ax.text(
            0.99,
            0.97,
            f"max {fmt_num(hist.get('max'))}",
            ha="right",
            va="top",
            transform=ax.transAxes,
            fontsize=8,
            color="0.3",
        )
    return fig


def _bars(ax, bins, color) -> None:
    """Integer unit bins as bars centred on the value; other bins as a filled step plot."""
    starts = [s for s, _, _ in bins]
    ends = [e for _, e, _ in bins]
    counts = [c for _, _, c in bins]
    unit = all(s is not None and e is not None and float(s).is_integer() and e - s == 1 for s, e in zip(starts, ends))
    if unit or all(e is None for e in ends):
        ax.bar(starts, counts, width=0.85 if len(bins) <= 60 else 1.0, color=color, linewidth=0)
        return

    edges = np.array(starts + [ends[-1]], dtype=float)
    finite = np.isfinite(edges)
    if not finite.all():  # an open last bin (e.g. "100+"): draw it one bin wide
        widths = np.diff(edges[finite])
        step = float(widths[-1]) if widths.size else 1.0
        for i in np.where(~finite)[0]:
            edges[i] = edges[i - 1] + step if i > 0 else edges[i + 1] - step
    ax.stairs(counts, edges, fill=True, color=color, alpha=0.9)


# --------------------------------------------------------------------------------------
# Fig. 7
# --------------------------------------------------------------------------------------
def scale_figure(report: dict):
    """Survey Fig. 7: relative width (a), height (b), area (c) histograms, log-scale y; (d) size groups."""
    scale = report.get("scale") or {}
    tv = scale.get("tv_to_uniform") if isinstance(scale.get("tv_to_uniform"), dict) else {}
    fig = new_figure(11.0, 7.2, constrained=False)
    axes = fig.subplots(2, 2)
    place(fig, rows=2, cols=2, left=0.8, right=0.2, top=0.35, bottom=0.85, wspace=0.9, hspace=0.85)
    panels = (
        ("relative_width", "(a) relative width w / W"),
        ("relative_height", "(b) relative height h / H"),
        ("relative_area", "(c) relative area √(wh / WH)"),
    )
    for ax, (key, label) in zip(axes.flat, panels):
        hist = scale.get(key)
        title = label
        if tv.get(key) is not None:
            title += f"   (TV to uniform {fmt_num(tv.get(key))})"
        ax.set_title(title, fontsize=10)
        bins = histogram_bins(hist)
        counts = [c for _, _, c in bins]
        if not bins or sum(counts) <= 0:
            _empty(ax, "no valid boxes")
            continue
        _bars(ax, bins, color="#55a868")
        _log_y(ax, counts)
        ax.set_xlim(0, max(1.0, max((e for _, e, _ in bins if e is not None), default=1.0)))
        ax.set_xlabel(label.split(" ", 1)[1])
        ax.set_ylabel("boxes (log scale)")
        ax.grid(axis="y", color="0.85", linewidth=0.6)
        ax.set_axisbelow(True)
    _size_groups_panel(axes.flat[3], scale)
    return fig


def _size_groups_panel(ax, scale: dict) -> None:
    groups = scale.get("size_groups")
    by_area_field = scale.get("size_groups_by") == "area_field"
    ax.set_title(f"(d) {size_groups_label(scale.get('size_groups_by'))}", fontsize=10)
    names = ["small", "medium", "large"]
    labels = ["small\n< 32²", "medium\n32² – 96²", "large\n≥ 96²"]
    series = []
    if isinstance(groups, dict):
        series.append(
            (
                "file's area field" if by_area_field else "box area w·h",
                [num(groups.get(k)) for k in names],
                "#ccb974" if by_area_field else "#8172b2",
            )
        )
    if not series or all(sum(v) <= 0 for _, v, _ in series):
        _empty(ax, "not available (no image sizes)" if not series else "no valid boxes")
        return
    width = 0.8 / len(series)
    for i, (label, values, color) in enumerate(series):
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(3)]
        bars = ax.bar(xs, values, width=width * 0.95, color=color, label=label)
        total = sum(values)
        for b, v in zip(bars, values):
            if total > 0:
                ax.annotate(
                    f"{100 * v / total:.1f}%",
                    xy=(b.get_x() + b.get_width() / 2, v),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    ax.set_xticks(range(3))
    ax.set_xticklabels(labels, fontsize=9)
    ax.set_xlabel("area in pixels of the original image")
    ax.set_ylabel("boxes")
    ax.margins(y=0.15)
    if len(series) > 1:
        ax.legend(fontsize=8, frameon=False)


# --------------------------------------------------------------------------------------
# Fig. 13
# --------------------------------------------------------------------------------------
def location_figure(report: dict):
    """Survey Fig. 13: heat map of box centres over the normalised image (rows = y, top on top)."""

    loc = report.get("location") or {}
    counts = np.asarray(loc.get("counts") or [], dtype=float)
    fig = new_figure(6.2, 5.4, constrained=False)
    ax = fig.add_subplot()
    place(fig, left=0.8, right=0.15, top=0.4, bottom=0.95)
    ax.set_title("Box centres over the normalised image", fontsize=11)
    if counts.ndim != 2 or counts.size == 0 or counts.sum() <= 0:
        _empty(ax, "no valid boxes")
        return fig
    im = ax.imshow(counts, extent=(0, 1, 1, 0), origin="upper", cmap="magma", interpolation="nearest", aspect="equal")
    ax.set_xlabel("x / W (centre)")
    ax.set_ylabel("y / H (centre; 0 = top)")
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(f"boxes per cell ({counts.shape[1]}×{counts.shape[0]} grid)")
    ax.text(0.0, -0.16, location_summary(loc), transform=ax.transAxes, fontsize=8, color="0.3")
    return fig


def location_per_class_figure(report: dict, max_classes: int = 12):
    """Fig. 13 per class: centre heat maps of the ``max_classes`` classes with most instances."""

    loc = report.get("location") or {}
    per_class = loc.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        return None
    order = [c for c in sorted_classes(report) if str(c.get("id")) in {str(k) for k in per_class}]
    lookup = {str(k): v for k, v in per_class.items()}
    chosen = [(c, np.asarray(lookup[str(c.get("id"))], dtype=float)) for c in order]
    chosen = [(c, m) for c, m in chosen if m.ndim == 2 and m.sum() > 0][:max_classes]
    if not chosen:
        return None
    cols = min(4, len(chosen))
    rows = math.ceil(len(chosen) / cols)
    fig = new_figure(2.6 * cols, 2.6 * rows + 0.3, constrained=False)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    place(fig, rows=rows, cols=cols, left=0.1, right=0.1, top=0.35, bottom=0.1, wspace=0.2, hspace=0.4)
    for ax, (c, m) in zip(axes, chosen):
        ax.imshow(m, extent=(0, 1, 1, 0), origin="upper", cmap="magma", interpolation="nearest")
        ax.set_title(f"{_plain(c.get('name', c.get('id')))} ({int(m.sum()):,})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(chosen) :]:
        ax.axis("off")
    return fig


# --------------------------------------------------------------------------------------
# all figures
# --------------------------------------------------------------------------------------
@dataclass
class FigureJob:
    """A figure not drawn yet: file name, title, caption and ``build()`` returning the Figure (or None when the
    report turns out to have nothing to draw). Jobs are built in worker processes by :func:`render_jobs`."""

    filename: str
    title: str
    caption: str
    build: Callable[[], Any]


# long: one flat table of the report's figures (file, title, caption, builder), one entry each
def figure_jobs(report: dict) -> list[FigureJob]:
    """Every figure the report supports, not drawn yet (see :func:`figures` for the list)."""
    out: list[FigureJob] = []
    if report.get("classes"):
        scope = report.get("frequency_scope") if isinstance(report.get("frequency_scope"), dict) else {}
        lvis = (
            "Colours give the LVIS frequency group, LVIS's thresholds on images per class (rare ≤ 10, "
            "common 11–100, frequent > 100)."
            if lvis_groups_shown(report)
            else f"No LVIS frequency colours: {scope.get('reason', 'hidden')}."
        )
        out.append(
            FigureJob(
                "fig5a_class_long_tail.png",
                "Class long tail (survey Fig. 5a)",
                "Instances per class (bars, log scale) with classes sorted by instances, and the number of images "
                f"containing each class (dots). {lvis} Re-draws Fig. 5a of Oksuz et al., Imbalance Problems in "
                "Object Detection, TPAMI 2021.",
                lambda: class_long_tail_figure(report),
            )
        )
    if isinstance(report.get("objects_per_image"), dict):
        out.append(
            FigureJob(
                "fig5b_objects_per_image.png",
                "Objects per image (survey Fig. 5b)",
                "Number of images (log scale) against the number of valid objects in an image; survey Fig. 5b.",
                lambda: per_image_figure(report["objects_per_image"], "objects", "b"),
            )
        )
    if isinstance(report.get("classes_per_image"), dict):
        out.append(
            FigureJob(
                "fig5c_classes_per_image.png",
                "Classes per image (survey Fig. 5c)",
                "Number of images (log scale) against the number of distinct classes in an image; survey Fig. 5c.",
                lambda: per_image_figure(report["classes_per_image"], "classes", "c"),
            )
        )
    if isinstance(report.get("scale"), dict):
        out.append(
            FigureJob(
                "fig7_scale.png",
                "Scale imbalance (survey Fig. 7)",
                "Distributions of box width (a), height (b) and area (c) relative to the image, log-scale y, as in "
                f"the survey's Fig. 7; (d) {size_groups_note(report['scale'].get('size_groups_by'))}.",
                lambda: scale_figure(report),
            )
        )
    loc = report.get("location")
    if isinstance(loc, dict) and loc.get("counts") is not None:
        out.append(
            FigureJob(
                "fig13_location.png",
                "Spatial imbalance: object centres (survey Fig. 13)",
                "Heat map of box centres over the normalised image (top of the image at the top); survey Fig. 13. "
                "A uniform map would mean every image region holds objects equally often.",
                lambda: location_figure(report),
            )
        )
        if isinstance(loc.get("per_class"), dict) and loc["per_class"]:
            out.append(
                FigureJob(
                    "fig13_location_per_class.png",
                    "Object centres per class (survey Fig. 13, by class)",
                    "Box-centre heat maps of the classes with most instances (count in brackets); each map has its "
                    "own colour scale.",
                    lambda: location_per_class_figure(report),
                )
            )
    anchors = report.get("anchors")
    if isinstance(anchors, dict) and anchors:
        names = {str(c.get("id")): str(c.get("name")) for c in report.get("classes") or [] if isinstance(c, dict)}
        for filename, title, build, caption in anchor_figures.figure_jobs(anchors, names or None):
            out.append(FigureJob(filename, title, caption, build))
    return out


def figures(report: dict) -> list[tuple[str, str, str, Any]]:
    """Build every figure the report supports: ``[(filename, title, caption, Figure), ...]``.

    Dataset figures (survey Figs. 5a, 5b, 5c, 7, 13) are drawn when their section is in the
    report; anchor figures are appended from ``anchor_figures.figures(report["anchors"])``
    when the report has anchors.
    """
    out = []
    for job in figure_jobs(report):
        fig = job.build()
        if fig is not None:
            out.append((job.filename, job.title, job.caption, fig))
    return out


def figure_png(fig: Any, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes (Agg) and release it."""
    buf = io.BytesIO()
    if fig.canvas is None or type(fig.canvas).__name__ == "FigureCanvasBase":
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    # constrained layout already fits every label inside the figure: no bbox_inches="tight" (its extra draw
    # costs 22% of the rendering CPU time, measured on the bundled sample's ten figures)
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    if "matplotlib.pyplot" in sys.modules:  # figures made with pyplot (e.g. by other modules) are closed
        sys.modules["matplotlib.pyplot"].close(fig)
    return buf.getvalue()


def render_figure_list(figs: list, dpi: int = 110) -> dict[str, bytes]:
    """``{filename: PNG bytes}`` of ``[(filename, title, Figure, ...), ...]`` (each figure released once rendered)."""
    return {item[0]: figure_png(item[2], dpi) for item in figs}


def render_figures(report: dict, dpi: int = 110, workers: int | None = None) -> list[RenderedFigure]:
    """Build and render every figure of :func:`figure_jobs` to PNG bytes (in parallel: :func:`render_jobs`)."""
    return [
        RenderedFigure(job.filename, job.title, job.caption, png)
        for job, png in render_jobs(figure_jobs(report), dpi=dpi, workers=workers)
    ]


_JOBS: list = []


def _render_job(args: tuple[int, int]) -> tuple[int, bytes | None]:
    i, dpi = args
    fig = _JOBS[i].build()
    return i, None if fig is None else figure_png(fig, dpi)


def figure_workers(jobs: int) -> int:
    """Processes drawing ``jobs`` figures: the cores this process may use, at most one per figure; 1 where
    the platform cannot fork (the workers inherit the report instead of receiving it)."""
    import multiprocessing

    if jobs < 2 or "fork" not in multiprocessing.get_all_start_methods() or sys.platform == "win32":
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, jobs))


def render_jobs(
    jobs: list[FigureJob], dpi: int = 110, workers: int | None = None, description: str = "figures"
) -> list[tuple[FigureJob, bytes]]:
    """``[(job, PNG bytes)]`` of the jobs that draw something, in job order.

    Figures are drawn on :func:`figure_workers` forked processes (each builds and renders its figures; the
    PNG bytes come back), one at a time in this process otherwise; a progress bar counts them on a terminal
    (one line off a terminal). The PNGs do not depend on the number of workers. Drawing is most of a small
    report's time (bundled val: ten figures), and it parallelises: see ``benchmarks/report.py``.
    """
    import matplotlib  # noqa: F401  (imported once here: forked workers inherit it)

    workers = figure_workers(len(jobs)) if workers is None else max(1, min(int(workers), len(jobs)))
    out: dict[int, bytes | None] = {}
    with progress.counter(len(jobs), description if workers == 1 else f"{description} on {workers} processes") as bar:
        if workers == 1:
            for i, job in enumerate(jobs):
                fig = job.build()
                out[i] = None if fig is None else figure_png(fig, dpi)
                bar.advance(1)
        else:
            import multiprocessing

            global _JOBS
            _JOBS = jobs
            try:
                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    for i, png in pool.imap_unordered(_render_job, [(i, dpi) for i in range(len(jobs))]):
                        out[i] = png
                        bar.advance(1)
            finally:
                _JOBS = []
    return [(job, out[i]) for i, job in enumerate(jobs) if out.get(i) is not None]
