"""Renderers of an ``imbalance.anchors/1`` report (a fitted anchor set): terminal, figure, HTML, files.

The report dict comes from :func:`imbalance_cli.anchorfit.outcome.to_report`; nothing here knows how it was
computed. rich and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import os
import sys
from html import escape
from pathlib import Path
from typing import Any

from imbalance_cli.fileio import dumps_json
from imbalance_cli.report.writer import check_out_dir, write_report

SNIPPET_FILES = {
    "torchvision": "torchvision_anchor_generator.py",
    "mmdet": "mmdet_anchor_generator.py",
    "detectron2": "detectron2_anchor_generator.yaml",
    "ultralytics": "ultralytics_anchors.yaml",
}
#: Every file name of an anchors report directory.
OWN_FILES = ("anchors.json", "fitted.toml", "anchors.png", "report.html", *SNIPPET_FILES.values())


def size_groups_label(size_by) -> str:
    """How the size groups are named (:func:`imbalance_cli.report.tables.size_groups_label`)."""
    from imbalance_cli.report.tables import size_groups_label as label

    return label(size_by)


def _scores(report: dict) -> tuple[str, dict, dict]:
    """(label, before, after): the all-image scores when computed, else the sample's."""
    if report.get("all"):
        return f"all {report['all']['after']['images']:,} images", report["all"]["before"], report["all"]["after"]
    return f"sample of {report['sample_images']:,} images", report["sample"]["before"], report["sample"]["after"]


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _f(v: Any, d: int = 2) -> str:
    return "–" if v is None else f"{float(v):.{d}f}"


def _is_yolo(report: dict) -> bool:
    """The report is of a preset kind with its own assignment (YOLOv5's ratio test: :mod:`anchors.kinds`)."""
    from imbalance_cli.anchors.kinds import KINDS

    return report["original"].get("kind") in KINDS


def _criterion(report: dict) -> str:
    """What "coverage" means for the report's preset (HTML-free text)."""
    o = report["original"]
    if _is_yolo(report):
        return f"coverage = a build_targets positive, width/height ratio < anchor_t {o['anchor_t']:g}"
    return f"coverage at IoU >= {o['pos_iou']:g}"


def _params_text(report: dict) -> str:
    p = report["fitted_params"]
    if "anchors" in p:
        return "fitted anchors (w, h) per level " + "; ".join(
            f"{n}: " + " ".join(f"{w:g},{h:g}" for w, h in lv)
            for n, lv in zip(report["fitted"]["level_names"], p["anchors"])
        )
    return f"fitted base sizes {p['base_sizes']} x scales {p['scales']}, ratios (h/w) {p['ratios']}"


def _bpr_text(report: dict) -> str | None:
    _, b, a = _scores(report)
    if b.get("bpr") is None:
        return None
    return (
        f"AutoAnchor BPR {b['bpr']:.4f} -> {a['bpr']:.4f}, anchors above threshold {b.get('aat') or 0:.2f} -> "
        f"{a.get('aat') or 0:.2f}"
    )


def comparison_rows(report: dict) -> list[tuple[str, str, str, str, str, str]]:
    """Rows ``(group, boxes, coverage before, after, positives/box before, after)`` of the before/after table."""
    _, b, a = _scores(report)
    rows = [
        (
            "all boxes",
            f"{b['boxes']:,}",
            _pct(b["coverage"]),
            _pct(a["coverage"]),
            _f(b["positives_per_box"]),
            _f(a["positives_per_box"]),
        )
    ]
    for section, prefix in (("by_size", "size: "), ("by_frequency", "classes: ")):
        for name, gb in b[section].items():
            ga = a[section][name]
            rows.append(
                (
                    prefix + name,
                    f"{gb['boxes']:,}",
                    _pct(gb["coverage"]),
                    _pct(ga["coverage"]),
                    _f(gb["positives_per_box"]),
                    _f(ga["positives_per_box"]),
                )
            )
    return rows


def render_terminal(report: dict, console=None, snippets: bool = True) -> None:
    """Print the before/after table, the fitted sizes and ratios and the framework snippets."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=None if sys.stdout.isatty() else 150)
    label, b, a = _scores(report)
    s = report["search"]
    t = Table(
        title=f"Anchors {report['original']['name']} -> {report['fitted']['name']}: objective "
        f"{report['objective']}, {label} ({_criterion(report)}; "
        f"Oksuz et al. TPAMI 2021 §5.4, Fig. 4b)",
        title_justify="left",
    )
    for col in ("group", "boxes", "coverage before", "after", "positives/box before", "after"):
        t.add_column(col, justify="left" if col == "group" else "right")
    for row in comparison_rows(report):
        t.add_row(*row)
    console.print(t)
    v = report.get("verdict")
    if v:
        from rich.text import Text

        from imbalance_cli.report.tables import LEVEL_STYLE

        line = Text("verdict ", style="bold")
        line.append(v["level"].upper(), style=LEVEL_STYLE.get(v["level"], ""))
        line.append(f"  {v['message']}")
        console.print(line)
    console.print(
        f"score ({report['objective']}): before {b['score']:.4f}, after {a['score']:.4f}; search on "
        f"{report['sample_images']:,} images, seed {report['seed']}, {s['iterations_done']} of "
        f"{s['iterations_asked']} iterations ({s['stopped']}), {s['seconds']:.1f} s"
    )
    if _bpr_text(report):
        console.print(_bpr_text(report))
    console.print(_params_text(report), highlight=False)
    if snippets:
        for fw, c in report["configs"].items():
            console.print(
                f"\n[bold]{fw}[/bold] ({'exact' if c['exact'] else 'not exact'}: {c['note']})", highlight=False
            )
            console.print(c["text"], markup=False, highlight=False)


def figure(report: dict):
    """Before/after bars: coverage and positives per box by size group and by class-frequency group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    label, b, a = _scores(report)
    fig = Figure(figsize=(10, 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for row, section, title in (
        (0, "by_size", size_groups_label(report.get("size_groups_by"))),
        (1, "by_frequency", "class frequency group"),
    ):
        names = list(b[section])
        x = list(range(len(names)))
        for col, key, ylabel in (
            (0, "coverage", "coverage at the positive threshold"),
            (1, "positives_per_box", "positives per box"),
        ):
            ax = axes[row][col]
            vb = [b[section][n][key] or 0.0 for n in names]
            va = [a[section][n][key] or 0.0 for n in names]
            ax.bar([i - 0.2 for i in x], vb, 0.4, label=f"before ({report['original']['name']})", color="#999999")
            ax.bar([i + 0.2 for i in x], va, 0.4, label=f"after ({report['fitted']['name']})", color="#1f77b4")
            ax.set_xticks(x, [f"{n}\n({b[section][n]['boxes']:,} boxes)" for n in names], fontsize=8)
            ax.set_ylabel(ylabel)
            ax.set_title(title, fontsize=10)
            if key == "coverage":
                ax.set_ylim(0, 1.05)
            if row == 0 and col == 0:
                ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Fitted anchors, objective {report['objective']} ({label})", fontsize=11)
    return fig


def figure_png(report: dict, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    import io

    buf = io.BytesIO()
    figure(report).savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def render_html(report: dict, png: bytes | None) -> str:
    """The ``imbalance anchors`` page, on the shared page template (:mod:`imbalance_cli.report.page`): verdict,
    the before/after table and figure, the fitted numbers, the search, the framework snippets and the TOML."""
    from imbalance_cli.report.page import render_page

    o, f = report["original"], report["fitted"]
    sections = [
        _verdict_section(report),
        _before_after_section(report, png),
        _fitted_section(report),
        _search_section(report),
        _configuration_section(report),
    ]
    facts = [
        str(report.get("dataset") or ""),
        f"preset {o['name']} -> {f['name']}",
        f"objective {report['objective']}",
        f"schema {report.get('schema', '')}",
    ]
    return render_page(
        kind="anchor fit",
        title=f"Anchor fit — {str(report.get('dataset') or '').rsplit('/', 1)[-1]}",
        facts=facts,
        sections=sections,
        footer="Every candidate was labelled by the preset's own resize, grid and matcher "
        "(imbalance_cli.stats.anchors.label_anchors); the full report is anchors.json.",
    )


def _verdict_section(report: dict):
    """The verdict and what the scores mean."""
    from imbalance_cli.report.page import Section, verdict_item

    label, b, a = _scores(report)
    o = report["original"]
    v = report.get("verdict")
    summary = (
        f"<p>Objective <b>{escape(report['objective'])}</b>; scores on {escape(label)}; coverage = share of "
        f"boxes with a positive ({escape(_criterion(report))}) under the preset's own matcher "
        f"({escape(o['matcher'])}, assigner {escape(o['assigner'])}). Score before {b['score']:.4f}, after "
        f"{a['score']:.4f}.</p>"
    )
    if v:
        summary = f'<ul class="verdicts">{verdict_item(v["level"], "fit", v["message"])}</ul>' + summary
    return Section("verdict", "Verdict", summary)


def _before_after_section(report: dict, png: bytes | None):
    """The before/after table by group and, when drawn, its figure."""
    from imbalance_cli.report.page import Section, figure_html, table

    label = _scores(report)[0]
    rows = [[(c, "" if i == 0 else "n") for i, c in enumerate(r)] for r in comparison_rows(report)]
    body = table(
        [
            (h, "" if i == 0 else "n")
            for i, h in enumerate(("group", "boxes", "coverage before", "after", "positives/box before", "after"))
        ],
        rows,
    )
    if png:
        body += figure_html(
            "before-after-figure",
            png,
            "Coverage and positives per box, before and after",
            f"by {size_groups_label(report.get('size_groups_by'))} and by class-frequency group ({label})",
            "anchors.png",
        )
    return Section("before-after", "Before and after", body, [("before-after-figure", "Figure")] if png else [])


def _fitted_section(report: dict):
    """The fitted numbers (and BPR where the preset declares it)."""
    from imbalance_cli.report.page import Section

    text = f"<p>{escape(_params_text(report))}.</p>"
    if _bpr_text(report):
        text += f"<p>{escape(_bpr_text(report))}.</p>"
    return Section("fitted", "Fitted anchors", text)


def _search_section(report: dict):
    """How the search ran: method, iterations, sample, seed, time."""
    from imbalance_cli.report.page import Section

    s = report["search"]
    return Section(
        "search",
        "Search",
        f"<p class='note'>{escape(s['method'])}; {s['iterations_done']} of "
        f"{s['iterations_asked']} iterations ({escape(s['stopped'])}) on a seeded sample of "
        f"{report['sample_images']:,} images (seed {report['seed']}), {s['seconds']:.1f} s.</p>",
    )


def _configuration_section(report: dict):
    """One snippet per framework, then the preset TOML."""
    from imbalance_cli.report.page import Section

    conf, entries = [], []
    for fw, c in report["configs"].items():
        entries.append((f"config-{fw}", fw))
        conf.append(
            f"<h3 id='config-{escape(fw)}'>{escape(fw)}</h3><p class='note'>"
            f"{'exact' if c['exact'] else 'not exact'}: {escape(c['note'])}</p><pre>{escape(c['text'])}</pre>"
        )
    conf.append(f"<h3 id='config-toml'>preset TOML (--anchors fitted.toml)</h3><pre>{escape(report['toml'])}</pre>")
    entries.append(("config-toml", "preset TOML"))
    return Section("configuration", "Configuration", "".join(conf), entries)


def write_outputs(report: dict, out_dir: str | os.PathLike, dpi: int = 110) -> list[Path]:
    """Write ``anchors.json``, ``fitted.toml``, one snippet file per framework, ``anchors.png`` and ``report.html``.

    Everything is rendered in memory first, then the directory is swapped in whole
    (:func:`imbalance_cli.report.writer.write_report`, all or nothing).
    """
    check_out_dir(out_dir)
    png = figure_png(report, dpi=dpi)
    files = {"anchors.json": dumps_json(report), "fitted.toml": report["toml"]}
    files.update({SNIPPET_FILES[fw]: c["text"] for fw, c in report["configs"].items()})
    files.update({"anchors.png": png, "report.html": render_html(report, png)})
    return write_report(out_dir, files, own=OWN_FILES, kind="anchors")
