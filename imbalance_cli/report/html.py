"""Self-contained ``report.html``: one file, CSS inline, figures embedded as base64 PNG data URIs.

The page references nothing outside itself (no scripts, fonts, stylesheets or images from
the network), so it can be mailed, attached to a CI run or opened offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
from html import escape
from typing import Any, Iterable

from imbalance_cli import __version__
from imbalance_cli.report.tables import (
    FREQUENCY_LABELS,
    MEASURE_INFO,
    anchor_summary_rows,
    coverage_caption,
    coverage_columns,
    disagreement_text,
    distribution_rows,
    fmt_int,
    fmt_num,
    fmt_pct,
    lvis_groups_shown,
    lvis_groups_text,
    size_groups_label,
    sorted_classes,
)

_CSS = """
:root { --fg:#1d2330; --muted:#5d6678; --line:#e2e6ee; --bg:#f6f7fb; --card:#ffffff;
        --ok:#1a7f37; --moderate:#9a6700; --severe:#cf222e; --accent:#3b5bdb; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 8px; }
.sub { color: var(--muted); margin: 0 0 18px; word-break: break-all; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 12.5px; }
.verdicts { list-style: none; padding: 0; margin: 0; display: grid; gap: 8px; }
.verdicts li { background: var(--card); border: 1px solid var(--line); border-left-width: 5px;
               border-radius: 8px; padding: 9px 12px; }
.verdicts li.ok { border-left-color: var(--ok); } .verdicts li.moderate { border-left-color: var(--moderate); }
.verdicts li.severe { border-left-color: var(--severe); }
.verdicts li.undetermined { border-left-color: var(--muted); }
.badge { display: inline-block; min-width: 78px; font-size: 11.5px; font-weight: 700; letter-spacing: .04em;
         text-transform: uppercase; border-radius: 999px; padding: 1px 8px; margin-right: 8px; text-align: center;
         color: #fff; background: var(--muted); }
.badge.ok { background: var(--ok); } .badge.moderate { background: var(--moderate); }
.badge.severe { background: var(--severe); }
.vt { font-weight: 600; margin-right: 6px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; align-items: start; }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line);
        border-radius: 8px; overflow: hidden; font-size: 13.5px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f7; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.m { color: var(--muted); }
tr:last-child td { border-bottom: none; }
.spark { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; color: var(--accent); white-space: pre; }
figure { background: var(--card); border: 1px solid var(--line); border-radius: 10px; margin: 0 0 16px; padding: 12px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 8px; }
figcaption b { color: var(--fg); }
.figs2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px; }
.figs2 figure { margin: 0; }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; font-weight: 600; color: #fff; }
.tag.r { background: #d62728; } .tag.c { background: #ff7f0e; } .tag.f { background: #1f77b4; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 36px; }
"""


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _table(header: list[tuple[str, str]], rows: Iterable[Iterable[tuple[str, str]]]) -> str:
    """An HTML table; cells are ``(text, css class)``; text is escaped here."""
    head = "".join(f'<th class="{c}">{escape(h)}</th>' for h, c in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="{c}">{escape(str(v))}</td>' for v, c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _freq_tag(f: Any) -> str:
    if f in FREQUENCY_LABELS:
        return f'<span class="tag {f}" title="{FREQUENCY_LABELS[f]}">{f}</span>'
    return "–"


def _class_table(classes: list[dict], start: int, total: float, lvis: bool = True) -> str:
    head = "".join(
        f'<th class="{c}">{escape(h)}</th>'
        for h, c in (("#", "n"), ("class", ""), ("id", "n"), ("instances", "n"), ("share", "n"), ("images", "n"),
                     *((("LVIS", ""),) if lvis else ()), ("BAGS", "n"))
    )
    rows = []
    for i, c in enumerate(classes):
        rows.append(
            "<tr>"
            f'<td class="n">{start + i}</td><td>{escape(str(c.get("name", "")))}</td>'
            f'<td class="n">{escape(str(c.get("id", "")))}</td><td class="n">{fmt_int(c.get("instances"))}</td>'
            f'<td class="n">{fmt_pct(c.get("instances"), total)}</td><td class="n">{fmt_int(c.get("images"))}</td>'
            + (f"<td>{_freq_tag(c.get('frequency'))}</td>" if lvis else "")
            + f"<td class=\"n\">{escape(str(c.get('bags_group') or '–'))}</td>"
            "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if f != f else f


def render_html(report: dict, figures: list, top: int = 15) -> str:
    """The complete HTML page for ``report`` with ``figures`` embedded.

    ``figures`` are :class:`imbalance_cli.report.figures.RenderedFigure` (or any objects with
    ``filename``, ``title``, ``caption`` and ``png`` attributes). Sections: headline numbers,
    verdicts, dataset summary, class-distribution measures, top/bottom classes, distribution
    summaries, anchor statistics (when present) and every figure with a caption citing the
    survey figure it re-draws.
    """

    ds = report.get("dataset") or {}
    measures = report.get("measures") if isinstance(report.get("measures"), dict) else {}
    anchors = report.get("anchors") if isinstance(report.get("anchors"), dict) else None
    classes = sorted_classes(report)
    total = sum(_num(c.get("instances")) for c in classes)
    lvis = lvis_groups_shown(report)
    path = str(ds.get("path") or "")
    title = f"Imbalance report — {path.rsplit('/', 1)[-1] or 'dataset'}"
    parts: list[str] = []

    parts.append(f"<h1>{escape(title)}</h1>")
    sub = []
    if path:
        sub.append(escape(path))
    if ds.get("format"):
        sub.append(f"format <b>{escape(str(ds.get('format')))}</b>")
    sub.append(f"schema {escape(str(report.get('schema', '')))}")
    parts.append(f'<p class="sub">{" · ".join(sub)}</p>')

    # headline cards -----------------------------------------------------------------------
    cards = [
        (fmt_int(ds.get("images")), "images"),
        (fmt_int(ds.get("boxes")), "valid boxes"),
        (f"{fmt_int(ds.get('categories_used'))} / {fmt_int(ds.get('categories'))}", "classes used / defined"),
        (fmt_num(measures.get("imbalance_ratio")), "imbalance ratio (max / min)"),
        (fmt_num(measures.get("gini")), "Gini coefficient"),
    ]
    if anchors and anchors.get("pos_neg_ratio"):
        cards.append((f"1 : {fmt_num(1.0 / _num(anchors['pos_neg_ratio']))}", "positive : negative anchors"))
    elif isinstance(report.get("objects_per_image"), dict):
        cards.append((fmt_num(report["objects_per_image"].get("mean")), "objects per image (mean)"))
    parts.append('<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>' for v, k in cards
    ) + "</div>")

    # verdicts ----------------------------------------------------------------------------------
    verdicts = [v for v in report.get("verdicts") or [] if isinstance(v, dict)]
    if verdicts:
        parts.append("<h2>Verdicts</h2><ul class=\"verdicts\">")
        for v in verdicts:
            level = str(v.get("level", ""))
            css = level if level in ("ok", "moderate", "severe", "undetermined") else ""
            parts.append(
                f'<li class="{css}"><span class="badge {css}">{escape(level)}</span>'
                f'<span class="vt">{escape(str(v.get("type", "")).replace("_", "-"))}</span>{escape(str(v.get("message", "")))}</li>'
            )
        parts.append("</ul>")

    # dataset + measures ---------------------------------------------------------------------
    parts.append("<h2>Dataset and class imbalance measures</h2><div class=\"grid2\">")
    rows = []
    for key, label in (("images", "images"), ("annotations", "annotations"), ("boxes", "valid boxes"),
                       ("crowd", "crowd boxes"), ("invalid", "invalid boxes"), ("categories", "categories defined"),
                       ("categories_used", "categories used"), ("images_without_boxes", "images without valid boxes"),
                       ("difficult", "difficult boxes (VOC)")):
        if key in ds and ds.get(key) is not None:
            note = ""
            if key == "invalid":
                reasons = ds.get("invalid_by_reason") or {}
                note = ", ".join(f"{k.replace('_', ' ')} {fmt_int(v)}" for k, v in reasons.items() if _num(v) > 0)
            elif key == "images_without_boxes":
                note = fmt_pct(ds.get(key), ds.get("images"))
            rows.append([(label, ""), (fmt_int(ds.get(key)), "n"), (note, "m")])
    parts.append("<div><h3>Dataset</h3>" + _table([("item", ""), ("count", "n"), ("note", "")], rows) + "</div>")
    mrows = []
    for key, value in measures.items():
        if isinstance(value, (dict, list)):
            continue
        label, meaning = MEASURE_INFO.get(key, (key, ""))
        mrows.append([(label, ""), (fmt_num(value, 4), "n"), (meaning, "m")])
    if mrows:
        parts.append("<div><h3>Measures (survey §9.2, over used classes)</h3>"
                     + _table([("measure", ""), ("value", "n"), ("meaning", "")], mrows) + "</div>")
    parts.append("</div>")

    # classes ----------------------------------------------------------------------------------
    if classes:
        parts.append("<h2>Classes</h2>")
        groups = _group_summary(report, classes)
        if groups:
            parts.append(f'<p class="sub">{groups}</p>')
        dis = disagreement_text(report)
        if dis:
            parts.append(f'<p class="sub">{escape(dis)}</p>')
        if len(classes) <= 2 * top:
            parts.append(f"<h3>All {len(classes)} classes by instances</h3>" + _class_table(classes, 1, total, lvis))
        else:
            parts.append('<div class="grid2">')
            parts.append(f"<div><h3>Top {top} classes</h3>{_class_table(classes[:top], 1, total, lvis)}</div>")
            parts.append(f"<div><h3>Bottom {top} classes</h3>"
                         f"{_class_table(classes[-top:], len(classes) - top + 1, total, lvis)}</div>")
            parts.append("</div>")

    # distributions ---------------------------------------------------------------------------
    drows = distribution_rows(report)
    if drows:
        parts.append("<h2>Distributions</h2>")
        parts.append(_table(
            [("what", ""), ("survey", ""), ("summary", ""), ("histogram (log)", "")],
            ([(n, ""), (f, "m"), (t, ""), (s, "spark")] for n, f, t, s in drows),
        ))

    # anchors -------------------------------------------------------------------------------------
    if anchors:
        parts.append("<h2>Anchors as the detector sees them (survey Fig. 4)</h2><div class=\"grid2\">")
        arows = [[(k, ""), (v, "n")] for k, v in anchor_summary_rows(anchors)]
        parts.append("<div><h3>Foreground / background</h3>" + _table([("statistic", ""), ("value", "n")], arows)
                     + "</div>")
        levels = anchors.get("levels")
        if isinstance(levels, list) and levels:
            lrows = []
            for lv in levels:
                lv = lv or {}
                lrows.append([(str(lv.get("name", "")), ""), (fmt_int(lv.get("stride")), "n"),
                              (fmt_int(lv.get("anchors")), "n"), (fmt_int(lv.get("foreground")), "n"),
                              (fmt_pct(lv.get("foreground"), lv.get("anchors")), "n"),
                              (fmt_int(lv.get("best_level_boxes")), "n")])
            parts.append("<div><h3>Pyramid levels (survey §5.4.1)</h3>" + _table(
                [("level", ""), ("stride", "n"), ("anchors", "n"), ("positives", "n"), ("pos. share", "n"),
                 ("boxes best here", "n")], lrows) + "</div>")
        coverage = anchors.get("coverage") if isinstance(anchors.get("coverage"), dict) else {}
        by_size = coverage.get("by_size")
        if isinstance(by_size, dict) and by_size:
            cols = coverage_columns(anchors)
            crow = []
            for g, v in by_size.items():
                v = v if isinstance(v, dict) else {}
                crow.append([(str(g), ""), (fmt_int(v.get("boxes")), "n")]
                            + [(f"{fmt_int(v.get(k))} ({fmt_pct(v.get(k), v.get('boxes'))})", "n") for k, _h in cols])
            parts.append(f"<div><h3>Coverage by {escape(size_groups_label(coverage.get('size_groups_by')))}</h3>"
                         + _table([("size", ""), ("boxes", "n")] + [(h, "n") for _k, h in cols], crow)
                         + f'<p class="note">{escape(coverage_caption(anchors))}</p></div>')
        per_class = _positives_per_instance(anchors, classes)
        if per_class:
            prow = [[(name, ""), (fmt_int(inst), "n"), (fmt_int(pos), "n"), (fmt_num(ratio), "n")]
                    for name, inst, pos, ratio in per_class]
            parts.append("<div><h3>Fewest positive anchors per instance (survey Fig. 4b)</h3>" + _table(
                [("class", ""), ("instances", "n"), ("positive anchors", "n"), ("per instance", "n")], prow)
                + "</div>")
        parts.append("</div>")

    # figures ----------------------------------------------------------------------------------
    if figures:
        parts.append("<h2>Figures</h2>")
        pair: list[str] = []
        for f in figures:
            html_fig = (
                f'<figure id="{escape(f.filename)}"><img src="{data_uri(f.png)}" alt="{escape(f.title)}">'
                f"<figcaption><b>{escape(f.title)}.</b> {escape(f.caption if f.caption != f.title else '')}"
                f" <span class=\"m\">({escape(f.filename)})</span></figcaption></figure>"
            )
            if f.filename.startswith(("fig5b", "fig5c")):
                pair.append(html_fig)
                if len(pair) == 2:
                    parts.append('<div class="figs2">' + "".join(pair) + "</div>")
                    pair = []
                continue
            if pair:
                parts.append('<div class="figs2">' + "".join(pair) + "</div>")
                pair = []
            parts.append(html_fig)
        if pair:
            parts.append('<div class="figs2">' + "".join(pair) + "</div>")

    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts.append(
        f"<footer>Generated by imbalance-cli {escape(__version__)} on {stamp}. Figures re-draw the statistics of "
        "Oksuz et al., <i>Imbalance Problems in Object Detection: A Review</i> (TPAMI): Figs. 4, 5, 7, 12, 13, 14. "
        "Tables as CSV and the full report as stats.json sit next to this file.</footer>"
    )
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body><main>\n{body}\n</main></body></html>\n"
    )


def _positives_per_instance(anchors: dict, classes: list[dict], n: int = 10) -> list[tuple]:
    """``(name, instances, positives, positives per instance)`` of the ``n`` used classes with the fewest."""
    pcp = anchors.get("per_class_positive")
    if not isinstance(pcp, dict) or not pcp:
        return []
    pos = {str(k): _num(v) for k, v in pcp.items()}
    rows = []
    for c in classes:
        inst = _num(c.get("instances"))
        if inst > 0:
            p = pos.get(str(c.get("id")), 0.0)
            rows.append((str(c.get("name", c.get("id"))), inst, p, p / inst))
    rows.sort(key=lambda r: (r[3], -r[1]))
    return rows[:n]


def _group_summary(report: dict, classes: list[dict]) -> str:
    bags: dict[str, int] = {}
    for c in classes:
        if c.get("bags_group") is not None:
            bags[str(c["bags_group"])] = bags.get(str(c["bags_group"]), 0) + 1
    out = [escape(line) for line in lvis_groups_text(report, classes)]
    if bags:
        out.append("BAGS groups by instances (Li et al., CVPR 2020, Eq. 3): " + ", ".join(
            f"group {escape(k)}: {v}" for k, v in sorted(bags.items())))
    unused = sum(1 for c in classes if _num(c.get("instances")) == 0)
    if unused:
        out.append(f"{unused} defined class{'es' if unused != 1 else ''} without instances")
    return "<br>".join(out)
