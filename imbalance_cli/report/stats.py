"""Renderer of the ``imbalance.stats/1`` report (``imbalance stats``): terminal, CSV, PNG, HTML.

* :func:`render_terminal` prints the rich summary;
* :func:`report_files` builds every file of the report directory in memory: ``stats.json``, the
  CSV tables of :func:`imbalance_cli.report.tables.csv_tables`, one PNG per figure of
  :func:`imbalance_cli.report.figures.figures` (survey Figs. 5, 7, 13 and, with anchors, 4, 12a,
  14) and ``report.html`` with every figure embedded;
* :func:`write_outputs` hands them to :func:`imbalance_cli.report.writer.write_report`, which swaps
  the whole directory in at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imbalance_cli.fileio import dumps_json
from imbalance_cli.report import anchor_tables, tables
from imbalance_cli.report.advice import render_terminal as render_advice
from imbalance_cli.report.figures import render_figures
from imbalance_cli.report.gallery import GalleryOptions, gallery_files
from imbalance_cli.report.html import render_html
from imbalance_cli.report.tables import (
    LEVEL_STYLE,
    MEASURE_INFO,
    _sortable,
    disagreement_text,
    distribution_rows,
    fmt_int,
    fmt_num,
    fmt_pct,
    lvis_groups_shown,
    lvis_groups_text,
    num,
    sorted_classes,
)
from imbalance_cli.report.writer import check_out_dir, write_report

#: Every file name a stats report directory may hold (replaced as a whole on the next run).
OWN_FILES = (
    "stats.json",
    "report.html",
    "classes.csv",
    "measures.csv",
    "objects_per_image.csv",
    "classes_per_image.csv",
    "scale_*.csv",
    "location.csv",
    "location_per_class.csv",
    "anchors_*.csv",
    "fig*.png",
    "anchor_coverage.png",
    "boxes.parquet",
    "gallery_*.jpg",
    "gallery_*.png",
)


def report_files(report: dict, dpi: int = 110, box_table=None, gallery: GalleryOptions | None = None) -> dict:
    """Every file of the report directory, rendered in memory: ``{file name: content}`` in writing order.

    ``box_table`` (:class:`imbalance_cli.stats.boxes.BoxTable`, with anchors) adds ``boxes.parquet``, written by
    the report writer straight into its temporary folder (a function of the path), and, with ``gallery``
    (:class:`imbalance_cli.report.gallery.GalleryOptions`), the gallery's thumbnails and section; what the
    gallery drew is recorded under ``gallery`` in ``report`` (the caller's dict) and ``stats.json``.
    """
    shots, section, summary = gallery_files(box_table, gallery)
    if summary is not None:
        report["gallery"] = summary
    files: dict = {"stats.json": dumps_json(report)}
    files.update(tables.csv_tables(report))
    if box_table is not None:
        files["boxes.parquet"] = box_table.write_parquet
    rendered = render_figures(report, dpi=dpi)
    for fig in rendered:
        files[fig.filename] = fig.png
    files.update(shots)
    files["report.html"] = render_html(report, rendered, extra_sections=[section] if section is not None else ())
    return files


def write_outputs(
    report: dict, out_dir: str | os.PathLike, dpi: int = 110, box_table=None, gallery: GalleryOptions | None = None
) -> list[Path]:
    """Write the report directory and return the written paths (in writing order).

    Everything is rendered in memory first, so a failure while building (bad report, plotting
    error) writes nothing; the directory is then written beside ``out_dir`` and swapped in whole
    (:func:`imbalance_cli.report.writer.write_report`), so an interrupted run leaves the previous
    complete report or the new one, never a mix.
    """
    check_out_dir(out_dir)  # before rendering anything
    files = report_files(report, dpi=dpi, box_table=box_table, gallery=gallery)
    return write_report(out_dir, files, own=OWN_FILES, kind="stats")


def render_terminal(report: dict, console=None, top: int = 10) -> None:
    """Print a readable rich summary of ``report`` to ``console`` (stdout by default).

    Sections: dataset summary, top and bottom ``top`` classes (all classes when there are
    at most ``2 * top``), class-distribution measures (survey §9.2), the histograms of
    Figs. 5b/5c, 7 and 13 summarised (numbers plus a log-scale sparkline), and one verdict per imbalance
    type. When the report carries ``anchors``, :func:`imbalance_cli.report.anchor_tables.render` follows.
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    ds = report.get("dataset") or {}

    title = "imbalance stats"
    if ds.get("path"):
        title += f" — {ds.get('path')}"
    if ds.get("format"):
        title += f" ({ds.get('format')})"
    console.rule(Text(title, style="bold"))

    _print_dataset(console, ds)

    # classes -----------------------------------------------------------------------------
    classes = sorted_classes(report)
    _print_classes(console, report, classes, top)

    # measures ----------------------------------------------------------------------------
    _print_measures(console, report.get("measures"))

    _print_distributions(console, report)

    # anchors ----------------------------------------------------------------------------
    anchors = report.get("anchors")
    if isinstance(anchors, dict) and anchors:
        names = {str(c.get("id")): str(c.get("name")) for c in classes}
        anchor_tables.render(anchors, console, names=names)

    # verdicts -----------------------------------------------------------------------------
    _print_verdicts(console, report)

    # what to change ------------------------------------------------------------------------
    if isinstance(report.get("advice"), dict):
        render_advice(report["advice"], console)


def _print_dataset(console, ds: dict) -> None:
    """The dataset summary table."""
    from rich.table import Table

    t = Table(title="Dataset", show_header=False, title_justify="left", box=None, padding=(0, 2))
    t.add_column(style="cyan")
    t.add_column(justify="right")
    t.add_column(style="dim")
    for label, value, note in _dataset_rows(ds):
        t.add_row(label, value, note)
    console.print(t)


def _print_distributions(console, report: dict) -> None:
    """The distributions table: each histogram summarised, with a log-scale sparkline."""
    from rich.table import Table
    from rich.text import Text

    spark_width = max(12, min(48, console.width - 34))
    rows = distribution_rows(report, spark_width=spark_width)
    if rows:
        t = Table(title="Distributions (sparklines on a log scale)", title_justify="left")
        t.add_column("what (survey figure)", style="cyan")
        t.add_column("summary / histogram")
        for name, fig, text, spark in rows:
            cell = Text(text)
            if spark:
                cell.append("\n" + spark, style="magenta")
            t.add_row(Text(name + "\n", style="cyan").append(fig, style="dim"), cell)
        console.print(t)


def _print_classes(console, report: dict, classes: list[dict], top: int) -> None:
    """The classes by instances (all, or the top and bottom ``top``), the group line and the disagreement note."""
    from rich.text import Text

    total_instances = sum(num(c.get("instances")) for c in classes)
    freq = lvis_groups_shown(report)
    if not classes:
        return
    if len(classes) <= 2 * top:
        console.print(
            _class_table(
                f"Classes by instances (all {len(classes)}, survey Fig. 5a)", classes, 1, total_instances, freq
            )
        )
    else:
        console.print(
            _class_table(f"Top {top} classes by instances (survey Fig. 5a)", classes[:top], 1, total_instances, freq)
        )
        start = len(classes) - top + 1
        console.print(_class_table(f"Bottom {top} classes", classes[-top:], start, total_instances, freq))
    groups = _group_line(report, classes)
    if groups:
        console.print(groups)
    dis = disagreement_text(report)
    if dis:
        console.print(Text(dis, style="yellow"))


def _print_measures(console, measures) -> None:
    """The class imbalance measures' table (survey §9.2)."""
    from rich.table import Table

    if isinstance(measures, dict) and measures:
        t = Table(title="Class imbalance measures (survey §9.2, over used classes)", title_justify="left")
        t.add_column("measure", style="cyan")
        t.add_column("value", justify="right")
        t.add_column("meaning", style="dim")
        for key, value in measures.items():
            if isinstance(value, (dict, list)):
                continue
            label, meaning = MEASURE_INFO.get(key, (key, ""))
            t.add_row(label, fmt_num(value, 4), meaning)
        console.print(t)


def _print_verdicts(console, report: dict) -> None:
    """One row per verdict."""
    from rich.table import Table
    from rich.text import Text

    verdicts = [v for v in report.get("verdicts") or [] if isinstance(v, dict)]
    if verdicts:
        t = Table(title="Verdicts", title_justify="left", show_header=False, box=None, padding=(0, 1))
        t.add_column(style="cyan", no_wrap=True)
        t.add_column(no_wrap=True)
        t.add_column()
        for v in verdicts:
            level = str(v.get("level", ""))
            t.add_row(
                str(v.get("type", "")).replace("_", "-"),
                Text(level.upper(), style=LEVEL_STYLE.get(level, "")),
                str(v.get("message", "")),
            )
        console.print(t)


def _dataset_rows(ds: dict) -> list[tuple[str, str, str]]:
    rows = []
    boxes = ds.get("boxes")
    if "images" in ds:
        rows.append(("images", fmt_int(ds.get("images")), ""))
    if "annotations" in ds:
        rows.append(("annotations", fmt_int(ds.get("annotations")), ""))
    if "boxes" in ds:
        rows.append(("valid boxes", fmt_int(boxes), "non-crowd, finite, positive size"))
    if "crowd" in ds:
        rows.append(("crowd boxes", fmt_int(ds.get("crowd")), "iscrowd / IsGroupOf"))
    if "invalid" in ds:
        reasons = ds.get("invalid_by_reason") or {}
        note = ", ".join(f"{k.replace('_', ' ')} {fmt_int(v)}" for k, v in reasons.items() if num(v) > 0)
        rows.append(("invalid boxes", fmt_int(ds.get("invalid")), note))
    if "categories" in ds or "categories_used" in ds:
        rows.append(
            ("categories used / defined", f"{fmt_int(ds.get('categories_used'))} / {fmt_int(ds.get('categories'))}", "")
        )
    if "images_without_boxes" in ds:
        rows.append(
            (
                "images without valid boxes",
                fmt_int(ds.get("images_without_boxes")),
                fmt_pct(ds.get("images_without_boxes"), ds.get("images")),
            )
        )
    if ds.get("difficult") is not None:
        rows.append(("difficult boxes", fmt_int(ds.get("difficult")), "VOC flag, among valid boxes"))
    if ds.get("has_image_sizes") is False:
        rows.append(("image sizes", "none", "relative statistics only"))
    return rows


def _class_table(title: str, classes: list[dict], start_rank: int, total: float, lvis: bool = True):
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    t.add_column("#", justify="right", style="dim")
    t.add_column("class", style="cyan")
    t.add_column("id", justify="right", style="dim")
    t.add_column("instances", justify="right")
    t.add_column("share", justify="right", style="dim")
    t.add_column("images", justify="right")
    if lvis:
        t.add_column("LVIS", justify="center")
    t.add_column("BAGS", justify="center")
    for i, c in enumerate(classes):
        t.add_row(
            str(start_rank + i),
            str(c.get("name", "")),
            str(c.get("id", "")),
            fmt_int(c.get("instances")),
            fmt_pct(c.get("instances"), total),
            fmt_int(c.get("images")),
            *([str(c.get("frequency") or "–")] if lvis else []),
            str(c.get("bags_group") or "–"),
        )
    return t


def _group_line(report: dict, classes: list[dict]):
    from rich.text import Text

    bags: dict[Any, int] = {}
    for c in classes:
        if c.get("bags_group") is not None:
            bags[c["bags_group"]] = bags.get(c["bags_group"], 0) + 1
    lvis = lvis_groups_text(report, classes)
    if not lvis and not bags:
        return None
    line = Text()
    for i, text in enumerate(lvis):
        head, _, rest = text.rpartition(": ")
        if i:
            line.append("\n")
        line.append(head + ": ", style="cyan")
        line.append(rest)
    if bags:
        if lvis:
            line.append("\n")
        line.append("BAGS groups (by instances): ", style="cyan")
        line.append(", ".join(f"{k}: {v}" for k, v in sorted(bags.items(), key=lambda kv: _sortable(kv[0]))))
    unused = sum(1 for c in classes if num(c.get("instances")) == 0)
    if unused:
        line.append(f"\nclasses without instances: {unused}", style="yellow")
    return line
