"""Self-contained ``report.html``: one file, CSS inline, figures embedded as base64 PNG data URIs.

The page references nothing outside itself (no scripts, fonts, stylesheets or images from
the network), so it can be mailed, attached to a CI run or opened offline.
"""

from __future__ import annotations

from html import escape
from typing import Any, Iterable, Optional

from imbalance_cli import vocabulary
from imbalance_cli.report.advice import section as advice_section
from imbalance_cli.report.page import Section, anchor_id, figure_html, render_page, table, verdict_item
from imbalance_cli.report.page import data_uri as _data_uri
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
    size_groups_note,
    sorted_classes,
)


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding PNG bytes (:func:`imbalance_cli.report.page.data_uri`)."""
    return _data_uri(png)


def _table(header: list[tuple[str, str]], rows: Iterable[Iterable[tuple[str, str]]]) -> str:
    """An HTML table; cells are ``(text, css class)``; text is escaped here."""
    return table(header, rows)


def _freq_tag(f: Any) -> str:
    if f in FREQUENCY_LABELS:
        return f'<span class="tag {f}" title="{FREQUENCY_LABELS[f]}">{f}</span>'
    return "–"


def _class_table(classes: list[dict], start: int, total: float, lvis: bool = True) -> str:
    head = "".join(
        f'<th class="{c}">{escape(h)}</th>'
        for h, c in (
            ("#", "n"),
            ("class", ""),
            ("id", "n"),
            ("instances", "n"),
            ("share", "n"),
            ("images", "n"),
            *((("LVIS", ""),) if lvis else ()),
            ("BAGS", "n"),
        )
    )
    rows = []
    for i, c in enumerate(classes):
        rows.append(
            "<tr>"
            f'<td class="n">{start + i}</td><td>{escape(str(c.get("name", "")))}</td>'
            f'<td class="n">{escape(str(c.get("id", "")))}</td><td class="n">{fmt_int(c.get("instances"))}</td>'
            f'<td class="n">{fmt_pct(c.get("instances"), total)}</td><td class="n">{fmt_int(c.get("images"))}</td>'
            + (f"<td>{_freq_tag(c.get('frequency'))}</td>" if lvis else "")
            + f'<td class="n">{escape(str(c.get("bags_group") or "–"))}</td>'
            "</tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if f != f else f


def render_html(report: dict, figures: list, top: int = 15, extra_sections: Iterable[Section] = ()) -> str:
    """The complete HTML page for ``report`` with ``figures`` embedded, on the shared page template.

    ``figures`` are :class:`imbalance_cli.report.figures.RenderedFigure` (or any objects with
    ``filename``, ``title``, ``caption`` and ``png`` attributes). Sections (each in the table of contents):
    summary (headline numbers), verdicts, dataset and measures, classes, distributions, anchors (when
    present), figures (each an entry of the contents), then ``extra_sections``
    (:class:`imbalance_cli.report.page.Section`: a later report part adds itself here).
    """
    ds = report.get("dataset") or {}
    path = str(ds.get("path") or "")
    title = f"Imbalance report — {path.rsplit('/', 1)[-1] or 'dataset'}"
    facts = [escape(path)] if path else []
    if ds.get("format"):
        facts.append(f"format <b>{escape(str(ds.get('format')))}</b>")
    facts.append(f"schema {escape(str(report.get('schema', '')))}")
    sections = stats_sections(report, figures, top) + list(extra_sections)
    footer = (
        "Figures re-draw the statistics of Oksuz et al., <i>Imbalance Problems in Object Detection: A Review</i> "
        "(TPAMI): Figs. 4, 5, 7, 12, 13, 14. Tables as CSV and the full report as stats.json sit next to this "
        "file; every quantity's name, unit and meaning is under <code>definitions</code> in stats.json."
    )
    return render_page(
        kind="dataset statistics", title=title, facts=facts, sections=sections, footer=footer, facts_html=True
    )


def stats_sections(report: dict, figures: list, top: int = 15) -> list[Section]:
    """The sections of the stats page, in order (see :func:`render_html`)."""
    ds = report.get("dataset") or {}
    measures = report.get("measures") if isinstance(report.get("measures"), dict) else {}
    anchors = report.get("anchors") if isinstance(report.get("anchors"), dict) else None
    classes = sorted_classes(report)
    total = sum(_num(c.get("instances")) for c in classes)
    lvis = lvis_groups_shown(report)

    out: list[Section] = [_summary_section(report, ds, measures, anchors)]
    verdicts = _verdicts_section(report)
    if verdicts is not None:
        out.append(verdicts)
    if isinstance(report.get("advice"), dict):  # what to change
        out.append(advice_section(report["advice"]))
    out.append(_dataset_section(ds, measures))
    if classes:
        out.append(_classes_section(report, classes, total, lvis, top))
    distributions = _distributions_section(report)
    if distributions is not None:
        out.append(distributions)
    if anchors:
        out.append(
            Section("anchors", "Anchors as the detector sees them (survey Fig. 4)", _anchor_html(anchors, classes))
        )
    if figures:
        out.append(_figures_section(figures))
    return out


def _summary_section(report: dict, ds: dict, measures: dict, anchors) -> Section:
    """The headline cards."""
    cards = [
        (fmt_int(ds.get("images")), vocabulary.label("images")),
        (fmt_int(ds.get("boxes")), vocabulary.label("boxes")),
        (f"{fmt_int(ds.get('categories_used'))} / {fmt_int(ds.get('categories'))}", "classes used / defined"),
        (fmt_num(measures.get("imbalance_ratio")), vocabulary.label("imbalance_ratio") + " (max / min)"),
        (fmt_num(measures.get("gini")), vocabulary.label("gini")),
    ]
    if anchors and anchors.get("pos_neg_ratio"):
        cards.append((f"1 : {fmt_num(1.0 / _num(anchors['pos_neg_ratio']))}", vocabulary.label("pos_neg_ratio")))
    elif isinstance(report.get("objects_per_image"), dict):
        cards.append((fmt_num(report["objects_per_image"].get("mean")), "objects per image (mean)"))
    return Section(
        "summary",
        "Summary",
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
            for v, k in cards
        )
        + "</div>",
    )


def _verdicts_section(report: dict) -> Optional[Section]:
    """The verdicts (None without any)."""
    verdicts = [v for v in report.get("verdicts") or [] if isinstance(v, dict)]
    if not verdicts:
        return None
    return Section(
        "verdicts",
        "Verdicts",
        '<ul class="verdicts">'
        + "".join(
            verdict_item(str(v.get("level", "")), str(v.get("type", "")).replace("_", "-"), str(v.get("message", "")))
            for v in verdicts
        )
        + "</ul>",
    )


def _dataset_section(ds: dict, measures: dict) -> Section:
    """The dataset's counts and the class imbalance measures."""
    parts = ['<div class="grid2">']
    rows = []
    for key in (*vocabulary.DATASET_COUNTS, "difficult"):
        if key in ds and ds.get(key) is not None:
            note = ""
            if key == "invalid":
                reasons = ds.get("invalid_by_reason") or {}
                note = ", ".join(f"{k.replace('_', ' ')} {fmt_int(v)}" for k, v in reasons.items() if _num(v) > 0)
            elif key == "images_without_boxes":
                note = fmt_pct(ds.get(key), ds.get("images"))
            rows.append([(vocabulary.label(key), ""), (fmt_int(ds.get(key)), "n"), (note, "m")])
    parts.append("<div><h3>Dataset</h3>" + _table([("item", ""), ("count", "n"), ("note", "")], rows) + "</div>")
    mrows = []
    for key, value in measures.items():
        if isinstance(value, (dict, list)):
            continue
        label, meaning = MEASURE_INFO.get(key, (key, ""))
        mrows.append([(label, ""), (fmt_num(value, 4), "n"), (meaning, "m")])
    if mrows:
        parts.append(
            "<div><h3>Measures (survey §9.2, over used classes)</h3>"
            + _table([("measure", ""), ("value", "n"), ("meaning", "")], mrows)
            + "</div>"
        )
    parts.append("</div>")
    return Section("dataset", "Dataset and class imbalance measures", "".join(parts))


def _classes_section(report: dict, classes: list[dict], total, lvis, top: int) -> Section:
    """The classes (all, or the top and bottom ``top``)."""
    parts = []
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
        parts.append(
            f"<div><h3>Bottom {top} classes</h3>"
            f"{_class_table(classes[-top:], len(classes) - top + 1, total, lvis)}</div>"
        )
        parts.append("</div>")
    parts.append('<p class="note">Every class is in classes.csv beside this page.</p>')
    return Section("classes", "Classes", "".join(parts))


def _distributions_section(report: dict) -> Optional[Section]:
    """The distributions' table (None without any)."""
    drows = distribution_rows(report)
    if not drows:
        return None
    return Section(
        "distributions",
        "Distributions",
        _table(
            [("what", ""), ("survey", ""), ("summary", ""), ("histogram (log)", "")],
            ([(n, ""), (f, "m"), (t, ""), (s, "spark")] for n, f, t, s in drows),
        )
        + f'<p class="note">{escape(size_groups_note((report.get("scale") or {}).get("size_groups_by")))}</p>',
    )


def _figures_section(figures: list) -> Section:
    """The figures (fig5b and fig5c side by side)."""
    parts, pair, entries = [], [], []
    for f in figures:
        fid = anchor_id(f.filename.rsplit(".", 1)[0])
        entries.append((fid, f.title))
        html_fig = figure_html(fid, f.png, f.title, f.caption, f.filename)
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
    return Section("figures", "Figures", "".join(parts), entries)


def _anchor_html(anchors: dict, classes: list[dict]) -> str:
    parts = ['<div class="grid2">']
    arows = [[(k, ""), (v, "n")] for k, v in anchor_summary_rows(anchors)]
    parts.append(
        "<div><h3>Foreground / background</h3>" + _table([("statistic", ""), ("value", "n")], arows) + "</div>"
    )
    levels = anchors.get("levels")
    if isinstance(levels, list) and levels:
        parts.append(_levels_html(levels))
    coverage = anchors.get("coverage") if isinstance(anchors.get("coverage"), dict) else {}
    by_size = coverage.get("by_size")
    if isinstance(by_size, dict) and by_size:
        parts.append(_coverage_html(anchors, coverage, by_size))
    per_class = _positives_per_instance(anchors, classes)
    if per_class:
        prow = [
            [(name, ""), (fmt_int(inst), "n"), (fmt_int(pos), "n"), (fmt_num(ratio), "n")]
            for name, inst, pos, ratio in per_class
        ]
        parts.append(
            "<div><h3>Fewest positive anchors per instance (survey Fig. 4b)</h3>"
            + _table([("class", ""), ("instances", "n"), ("positive anchors", "n"), ("per instance", "n")], prow)
            + "</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def _levels_html(levels: list) -> str:
    """The pyramid levels' table: stride, anchors, positives, their share and the boxes whose best anchor is there."""
    lrows = []
    for lv in levels:
        lv = lv or {}
        lrows.append(
            [
                (str(lv.get("name", "")), ""),
                (fmt_int(lv.get("stride")), "n"),
                (fmt_int(lv.get("anchors")), "n"),
                (fmt_int(lv.get("foreground")), "n"),
                (fmt_pct(lv.get("foreground"), lv.get("anchors")), "n"),
                (fmt_int(lv.get("best_level_boxes")), "n"),
            ]
        )
    return (
        "<div><h3>Pyramid levels (survey §5.4.1)</h3>"
        + _table(
            [
                ("level", ""),
                ("stride", "n"),
                ("anchors", "n"),
                ("positives", "n"),
                ("pos. share", "n"),
                ("boxes best here", "n"),
            ],
            lrows,
        )
        + "</div>"
    )


def _coverage_html(anchors: dict, coverage: dict, by_size: dict) -> str:
    """The coverage table by size group, with the columns and caption the vocabulary gives."""
    cols = coverage_columns(anchors)
    crow = []
    for g, v in by_size.items():
        v = v if isinstance(v, dict) else {}
        crow.append(
            [(str(g), ""), (fmt_int(v.get("boxes")), "n")]
            + [(f"{fmt_int(v.get(k))} ({fmt_pct(v.get(k), v.get('boxes'))})", "n") for k, _h in cols]
        )
    return (
        f"<div><h3>Coverage by {escape(size_groups_label(coverage.get('size_groups_by')))}</h3>"
        + _table([("size", ""), ("boxes", "n")] + [(h, "n") for _k, h in cols], crow)
        + f'<p class="note">{escape(coverage_caption(anchors))}</p></div>'
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
        out.append(
            "BAGS groups by instances (Li et al., CVPR 2020, Eq. 3): "
            + ", ".join(f"group {escape(k)}: {v}" for k, v in sorted(bags.items()))
        )
    unused = sum(1 for c in classes if _num(c.get("instances")) == 0)
    if unused:
        out.append(f"{unused} defined class{'es' if unused != 1 else ''} without instances")
    return "<br>".join(out)
