"""Renderers of the ``imbalance.splits/1`` report (:mod:`imbalance_cli.stats.splits`).

* :func:`render_terminal`: every split's usual report, then one side-by-side table of the splits
  (images, boxes, background images, class measures, YOLOv5 positives per box and AutoAnchor BPR
  when computed), the two-split distances, and the loader's label-file findings (``file:line``);
* :func:`write_outputs`: ``splits.json``, ``splits.csv`` (the side-by-side table), one sub-folder
  per split with that split's usual outputs (stats.json, CSVs, PNGs, report.html), the comparison
  figures ``compare_*.png`` and ``splits.html`` (the side-by-side section, comparison figures
  embedded, links to each split's page). Everything is rendered in memory first and the directory
  is swapped in whole (:func:`imbalance_cli.report.writer.write_report`): all or nothing.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

from imbalance_cli import vocabulary
from imbalance_cli.errors import InputError
from imbalance_cli.fileio import dumps_json
from imbalance_cli.report.compare import figures as compare_figures
from imbalance_cli.report.figures import figure_png
from imbalance_cli.report.stats import OWN_FILES as STATS_OWN_FILES
from imbalance_cli.report.stats import render_terminal as render_stats
from imbalance_cli.report.stats import report_files as stats_report_files
from imbalance_cli.report.writer import check_out_dir, write_report

_COLUMNS = (
    ("split", "split"),
    ("images", "images"),
    ("boxes", "boxes"),
    ("images_without_boxes", "background imgs"),
    ("classes_used", "classes used"),
    ("imbalance_ratio", "imb. ratio"),
    ("gini", "Gini"),
    ("normalized_entropy", "norm. entropy"),
    ("positives_per_box", "YOLOv5 pos./box"),
    ("boxes_without_positive", vocabulary.term("boxes_without_positive").column),
    ("bpr", vocabulary.label("bpr")),
    ("anchors_above_threshold", vocabulary.label("aat")),
)


def summary_rows(report: dict) -> list[dict]:
    """One flat row per split: the figures the side-by-side table shows."""
    rows = []
    for name in report["order"]:
        r = report["splits"][name]
        d, m = r["dataset"], r["measures"]
        a = r.get("anchors") or {}
        aa = a.get("autoanchor") or {}
        ppi = a.get("positives_per_box") or {}
        rows.append(
            {
                "split": name,
                "images": d["images"],
                "boxes": d["boxes"],
                "images_without_boxes": d["images_without_boxes"],
                "classes_used": d["categories_used"],
                "imbalance_ratio": m.get("imbalance_ratio"),
                "gini": m.get("gini"),
                "normalized_entropy": m.get("normalized_entropy"),
                "positives_per_box": ppi.get("mean"),
                "boxes_without_positive": a.get("boxes_without_positive"),
                "bpr": aa.get("bpr"),
                "anchors_above_threshold": aa.get("aat"),
            }
        )
    return rows


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1000 else f"{v:,.1f}"
    return str(v)


def distance_rows(report: dict) -> list[tuple[str, str]]:
    """(what, value) rows of the two-split comparison."""
    c = report.get("comparison")
    if not c:
        return []
    rows = [
        ("class distribution TV", _fmt(c["classes"]["tv"])),
        ("class distribution JS (nats)", _fmt(c["classes"]["js"])),
        (f"classes only in {c['a']['name']}", _fmt(len(c["classes"]["only_in_a"]))),
        (f"classes only in {c['b']['name']}", _fmt(len(c["classes"]["only_in_b"]))),
    ]
    for key in ("relative_width", "relative_height", "relative_area"):
        s = c["scale"][key]
        rows.append((f"{key.replace('_', ' ')} W1 / TV", f"{_fmt(s['wasserstein'])} / {_fmt(s['tv'])}"))
    rows.append(("box-centre histogram TV", _fmt(c["location"]["tv"])))
    return rows


def label_rows(report: dict, n: int = 5) -> list[str]:
    """Human lines about label files: background images, bad lines (first ``n`` as file:line), duplicates."""
    lab = report.get("labels") or {}
    out = []
    if lab.get("background_images") is not None:
        out.append(f"background images (no or empty label file): {lab['background_images']:,}")
    if lab.get("corrupt_image_count"):
        out.append(
            f"corrupt images skipped as {lab.get('trainer', 'the trainer')} skips them: "
            f"{lab['corrupt_image_count']:,} (--strict makes them fatal)"
        )
        out.extend("  " + s for s in lab.get("corrupt", [])[:n])
        if lab["corrupt_image_count"] > n:
            out.append(f"  ... and {lab['corrupt_image_count'] - n:,} more (all listed in JSON)")
    if lab.get("segment_lines"):
        out.append(f"segment lines read as their bounding box: {lab['segment_lines']:,}")
    if lab.get("duplicate_labels"):
        out.append(f"duplicate label rows removed (as the trainer removes them): {lab['duplicate_labels']:,}")
    return out


def render_terminal(report: dict, console=None, per_split: bool = True) -> None:
    """Print each split's report, then the side-by-side table, the distances and label findings."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if per_split:
        for name in report["order"]:
            console.rule(f"split: {name}")
            render_stats(report["splits"][name], console)
    console.rule("splits side by side")
    rows = summary_rows(report)
    t = Table(title=f"Splits of {report.get('path')}")
    t.add_column("")
    for row in rows:
        t.add_column(str(row["split"]), justify="right")
    for k, label in _COLUMNS[1:]:
        t.add_row(label, *[_fmt(row[k]) for row in rows])
    console.print(t)
    dr = distance_rows(report)
    if dr:
        a, b = report["compared"]
        d = Table(title=f"{a} vs {b} (imbalance compare distances)")
        d.add_column("distance")
        d.add_column("value", justify="right")
        for k, v in dr:
            d.add_row(k, v)
        console.print(d)
    for line in label_rows(report):
        console.print(line, markup=False, highlight=False)


def render_html(report: dict, figures: list[tuple[str, str, bytes]]) -> str:
    """The ``splits.html`` page on the shared page template (:mod:`imbalance_cli.report.page`): the side-by-side
    table (each split linked to its own report page), the two-split distances, the label-file findings and
    the comparison figures."""
    from imbalance_cli.report.page import Section, anchor_id, figure_html, render_page, table

    esc = html.escape
    sections = [Section("splits", "Splits side by side", _side_by_side(report))]
    dr = distance_rows(report)
    if dr:
        a, b = report["compared"]
        sections.append(
            Section(
                "distances",
                f"{a} vs {b}: distances",
                table([("distance", ""), ("value", "n")], ([(k, ""), (v, "n")] for k, v in dr)),
            )
        )
    lr = label_rows(report, n=20)
    if lr:
        sections.append(Section("labels", "Label files", "<pre>" + esc("\n".join(lr)) + "</pre>"))
    if figures:
        entries = [(anchor_id(name.rsplit(".", 1)[0]), title) for name, title, _png in figures]
        sections.append(
            Section(
                "figures",
                "Comparison figures",
                "".join(
                    figure_html(fid, png, title, "", name) for (fid, _t), (name, title, png) in zip(entries, figures)
                ),
                entries,
            )
        )
    path = str(report.get("path") or "")
    facts = [
        path,
        f"format {report.get('format')}",
        f"{len(report['order'])} splits: {', '.join(report['order'])}",
        f"schema {report.get('schema', '')}",
    ]
    return render_page(
        kind="splits",
        title=f"Splits of {path.rsplit('/', 1)[-1] or 'the dataset'}",
        facts=facts,
        sections=sections,
        footer="Each split's full report sits in its own folder; all numbers are in splits.json.",
    )


def _side_by_side(report: dict) -> str:
    """The splits' table, one row per split, each split's name linked to its own report page."""
    esc = html.escape
    head = "".join(f"<th{' class=n' if k != 'split' else ''}>{esc(lab)}</th>" for k, lab in _COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td><a href="{esc(row["split"])}/report.html">{esc(row["split"])}</a></td>'
            if k == "split"
            else f"<td class=n>{esc(_fmt(row[k]))}</td>"
            for k, _l in _COLUMNS
        )
        + "</tr>"
        for row in summary_rows(report)
    )
    return (
        f"<div class='wide'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        "<p class='note'>Each split's own report (dataset, anchors, figures): its link.</p>"
    )


def _figures(report: dict, dpi: int) -> list[tuple[str, str, bytes]]:
    if not report.get("comparison"):
        return []
    return [(name, title, figure_png(fig, dpi=dpi)) for name, title, fig in compare_figures(report["comparison"])]


#: Top-level files of a splits report directory (each split's folder holds a stats report).
OWN_FILES = ("splits.json", "splits.csv", "splits.html", "compare_*.png")


def report_files(report: dict, dpi: int = 110, box_tables: dict | None = None, gallery=None) -> dict:
    """Every file of the splits directory, rendered in memory: ``{name or split/name: content}``; ``box_tables``
    (split name -> :class:`imbalance_cli.stats.boxes.BoxTable`) adds each split's ``boxes.parquet`` and, with
    ``gallery`` (:class:`imbalance_cli.report.gallery.GalleryOptions`), its gallery."""
    import pandas as pd

    for name in report["order"]:
        if name in ("compare",) or "/" in name or name.startswith("."):
            raise InputError(f"split name {name!r} cannot be used as an output folder name")
    figs = _figures(report, dpi)
    files: dict = {}
    for name in report["order"]:
        table = (box_tables or {}).get(name)
        for fname, content in stats_report_files(
            report["splits"][name], dpi=dpi, box_table=table, gallery=gallery
        ).items():
            files[f"{name}/{fname}"] = content
    files["splits.json"] = dumps_json(report)
    files["splits.csv"] = pd.DataFrame(summary_rows(report)).to_csv(index=False)
    for name, _t, png in figs:
        files[name] = png
    files["splits.html"] = render_html(report, figs)
    return files


def write_outputs(
    report: dict, out_dir: str | os.PathLike, dpi: int = 110, box_tables: dict | None = None, gallery=None
) -> list[Path]:
    """Write the splits report directory (see module docstring), all or nothing; return the written paths."""
    check_out_dir(out_dir)
    own = OWN_FILES + tuple(report["order"]) + tuple(f"{n}/{p}" for n in report["order"] for p in STATS_OWN_FILES)
    files = report_files(report, dpi=dpi, box_tables=box_tables, gallery=gallery)
    return write_report(out_dir, files, own=own, kind="splits")
