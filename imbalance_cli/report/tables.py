"""CSV tables of an ``imbalance.stats/1`` report dict and the helpers its renderers share.

Renderers know the report and nothing about how it was computed: every function here takes
the plain report dict (``Report.to_dict()``), tolerates missing optional keys and ignores
unknown ones. Helpers shared with the figures and the HTML page (class ordering, histogram
summaries, number formatting) live here too.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable

import numpy as np

from imbalance_cli import vocabulary
from imbalance_cli.report._common import num

#: Label and meaning of each class-distribution measure (Oksuz et al., Imbalance Problems in Object Detection,
#: TPAMI 2021, §9.2), read from the one vocabulary (:mod:`imbalance_cli.vocabulary`).
MEASURE_INFO: dict[str, tuple[str, str]] = {
    k: (vocabulary.label(k), vocabulary.meaning(k))
    for k in ("imbalance_ratio", "gini", "normalized_entropy", "tv_to_uniform", "kl_to_uniform", "cv", "classes_used")
}

#: Labels of the LVIS frequency groups (rare <= 10 images, common 11-100, frequent > 100).
FREQUENCY_LABELS = {"r": "rare", "c": "common", "f": "frequent"}

#: How the LVIS groups are named wherever they are shown: LVIS's thresholds, by image count.
LVIS_GROUPS_TITLE = (
    "LVIS frequency groups (LVIS's thresholds on images per class: rare ≤ 10, common 11–100, frequent > 100)"
)

#: Colours per verdict level, shared by terminal and HTML.
LEVEL_STYLE = {
    "ok": "green",
    "moderate": "yellow",
    "severe": "bold red",
    "undetermined": "dim",
    "better": "green",
    "trade-off": "yellow",
    "no gain": "bold red",
}

_SPARK = "▁▂▃▄▅▆▇█"


# --------------------------------------------------------------------------------------
# small shared helpers
# --------------------------------------------------------------------------------------
def fmt_int(value: Any) -> str:
    """Format an integer-like value with thousands separators ("–" when missing)."""
    if value is None:
        return "–"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(f):
        return "–"
    if f == int(f):
        return f"{int(f):,}"
    return fmt_num(f)


def fmt_num(value: Any, digits: int = 3) -> str:
    """Format a float with ``digits`` significant digits ("–" when missing or not finite)."""
    if value is None:
        return "–"
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(f):
        return "–"
    if f != 0 and (abs(f) >= 1e6 or abs(f) < 1e-3):
        return f"{f:.{digits - 1}e}"
    if abs(f) >= 100:
        return f"{f:,.0f}" if f == int(f) else f"{f:,.1f}"
    return f"{f:.{digits}g}"


def fmt_pct(part: Any, total: Any) -> str:
    """``part`` as a percentage of ``total`` ("–" when undefined)."""
    try:
        p, t = float(part), float(total)
    except (TypeError, ValueError):
        return "–"
    if not t or math.isnan(p) or math.isnan(t):
        return "–"
    return f"{100.0 * p / t:.1f}%"


def sorted_classes(report: dict) -> list[dict]:
    """Classes sorted by instances (descending), ties by images (descending) then id."""
    classes = [c for c in report.get("classes") or [] if isinstance(c, dict)]

    def key(c):
        return (-num(c.get("instances")), -num(c.get("images")), _sortable(c.get("id")))

    return sorted(classes, key=key)


def _sortable(v: Any):
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def histogram_bins(hist: dict | None) -> list[tuple[float | None, float | None, float]]:
    """Normalise a ``{edges, counts}`` histogram to ``[(start, end, count), ...]``.

    ``edges`` normally has one more entry than ``counts``; when both have the same
    length the edges are read as the bin values (``end`` is None); without edges the
    bins are numbered.
    """
    if not isinstance(hist, dict):
        return []
    counts = hist.get("counts")
    if counts is None:
        return []
    counts = [num(c) for c in _flat(counts)]
    edges = hist.get("edges")
    edges = [None if e is None else float(e) for e in _flat(edges)] if edges is not None else []
    if len(edges) == len(counts) + 1:
        return [(edges[i], edges[i + 1], counts[i]) for i in range(len(counts))]
    if len(edges) == len(counts):
        return [(edges[i], None, counts[i]) for i in range(len(counts))]
    return [(float(i), float(i + 1), counts[i]) for i in range(len(counts))]


def _flat(values: Any) -> list:
    if values is None:
        return []
    if hasattr(values, "tolist"):
        values = values.tolist()
    return list(values)


def histogram_quantile(hist: dict | None, q: float) -> tuple[float | None, float | None] | None:
    """The bin ``[start, end)`` that holds quantile ``q`` of a binned histogram (None if empty)."""
    bins = histogram_bins(hist)
    total = sum(c for _, _, c in bins)
    if total <= 0:
        return None
    target = q * total
    running = 0.0
    for start, end, c in bins:
        running += c
        if running >= target and c > 0:
            return (start, end)
    return (bins[-1][0], bins[-1][1])


def sparkline(counts: Iterable[float], log: bool = True, width: int | None = 40) -> str:
    """A one-line unicode bar chart of ``counts`` (log-scaled by default, like the survey's axes).

    Longer inputs are summed into ``width`` groups; empty bins show as a space.
    """
    values = [max(num(c), 0.0) for c in counts]
    if not values:
        return ""
    if width and len(values) > width:
        step = len(values) / width
        values = [sum(values[int(i * step) : int((i + 1) * step)]) for i in range(width)]
    scaled = [math.log1p(v) if log else v for v in values]
    top = max(scaled)
    if top <= 0:
        return " " * len(values)
    out = []
    for v, s in zip(values, scaled):
        if v <= 0:
            out.append(" ")
        else:
            out.append(_SPARK[min(len(_SPARK) - 1, int(s / top * (len(_SPARK) - 1) + 0.5))])
    return "".join(out)


def _range_text(bounds: tuple[float | None, float | None] | None, integer: bool = False) -> str:
    if bounds is None:
        return "–"
    start, end = bounds
    if integer and start is not None and (end is None or end - start == 1):
        return fmt_int(start)
    if end is None:
        return fmt_num(start)
    return f"[{fmt_num(start)}, {fmt_num(end)})"


def distribution_rows(report: dict, spark_width: int = 40) -> list[tuple[str, str, str, str]]:
    """Rows ``(name, survey figure, summary text, sparkline)`` describing the histograms."""
    rows: list[tuple[str, str, str, str]] = []
    for key, label, fig in (
        ("objects_per_image", "objects per image", "Fig. 5b"),
        ("classes_per_image", "classes per image", "Fig. 5c"),
    ):
        h = report.get(key)
        if isinstance(h, dict):
            med = _range_text(histogram_quantile(h, 0.5), integer=True)
            text = f"mean {fmt_num(h.get('mean'))} · median {med} · max {fmt_int(h.get('max'))}"
            rows.append((label, fig, text, sparkline(h.get("counts") or [], width=spark_width)))
    scale = report.get("scale") or {}
    tv = scale.get("tv_to_uniform") if isinstance(scale.get("tv_to_uniform"), dict) else {}
    for key, label in (
        ("relative_width", "relative width w/W"),
        ("relative_height", "relative height h/H"),
        ("relative_area", "relative area √(wh/WH)"),
    ):
        h = scale.get(key)
        if isinstance(h, dict):
            text = f"median in {_range_text(histogram_quantile(h, 0.5))}"
            if tv.get(key) is not None:
                text += f" · TV to uniform {fmt_num(tv.get(key))}"
            rows.append((label, "Fig. 7", text, sparkline(h.get("counts") or [], width=spark_width)))
    groups = scale.get("size_groups")
    label = size_groups_label(scale.get("size_groups_by"))
    if isinstance(groups, dict):
        total = sum(num(groups.get(k)) for k in ("small", "medium", "large"))
        text = ", ".join(
            f"{k} {fmt_int(groups.get(k))} ({fmt_pct(groups.get(k), total)})" for k in ("small", "medium", "large")
        )
        rows.append((label, "Fig. 7", text, ""))
    elif "size_groups" in scale:
        rows.append((label, "Fig. 7", "not available (no image sizes)", ""))
    loc = report.get("location")
    if isinstance(loc, dict) and loc.get("counts") is not None:
        text = location_summary(loc)
        rows.append(("object centres", "Fig. 13", text, ""))
    return rows


def size_groups_label(size_by: Any) -> str:
    """How an output names the size groups: by box area (the default) or COCO-eval groups (the file's area)."""
    return "COCO-eval size groups (file's area)" if size_by == "area_field" else "size groups (box w·h)"


def size_groups_note(size_by: Any) -> str:
    """The size-group definition in one line (:mod:`imbalance_cli.vocabulary`)."""
    return vocabulary.size_definition_text(size_by if size_by in vocabulary.SIZE_DEFINITIONS else None)


def thresholds_text(anchors: dict) -> str | None:
    """The matching rule in words: IoU thresholds, or YOLOv5's width/height ratio test (which has no IoU)."""
    th = anchors.get("thresholds")
    if not isinstance(th, dict):
        return None
    if th.get("anchor_t") is not None:
        text = f"width/height ratio test max(r, 1/r) < {fmt_num(th.get('anchor_t'))} (YOLOv5 anchor_t; no IoU)"
        if th.get("offset_g") is not None:
            text += f", neighbour-cell offset {fmt_num(th.get('offset_g'))}"
        return text
    if th.get("pos_iou") is None:
        return None
    text = f"positive IoU ≥ {fmt_num(th.get('pos_iou'))}"
    if th.get("neg_iou") is not None:
        text += f", negative < {fmt_num(th.get('neg_iou'))}"
    if th.get("allow_low_quality") is not None:
        text += f", low-quality matches {'on' if th.get('allow_low_quality') else 'off'}"
    return text


def location_summary(loc: dict) -> str:
    """One line about the centre heat map: TV to uniform and the share in the central ninth."""
    counts = np.asarray(loc.get("counts") or [], dtype=float)
    parts = []
    if loc.get("tv_to_uniform") is not None:
        parts.append(f"TV to uniform {fmt_num(loc.get('tv_to_uniform'))}")
    if counts.ndim == 2 and counts.size and counts.sum() > 0:
        h, w = counts.shape
        centre = counts[h // 3 : h - h // 3, w // 3 : w - w // 3].sum() / counts.sum()
        area = ((h - 2 * (h // 3)) * (w - 2 * (w // 3))) / (h * w)
        parts.append(f"{100 * centre:.1f}% of centres in the middle {100 * area:.0f}% of the image")
    return ", ".join(parts) if parts else "–"


def lvis_groups_shown(report: dict) -> bool:
    """False when the report's ``frequency_scope`` hides the LVIS groups (dataset far smaller than LVIS)."""
    scope = report.get("frequency_scope")
    return not (isinstance(scope, dict) and scope.get("shown") is False)


def lvis_groups_text(report: dict, classes: list[dict] | None = None) -> list[str]:
    """Lines about the LVIS frequency groups: the computed groups (or why they are hidden) and the file's own."""
    classes = sorted_classes(report) if classes is None else classes
    lines = []
    scope = report.get("frequency_scope") if isinstance(report.get("frequency_scope"), dict) else {}
    freq = _count(c.get("frequency") for c in classes)
    if not lvis_groups_shown(report):
        lines.append(f"LVIS frequency groups {scope.get('reason', 'hidden')}")
    elif freq:
        lines.append(
            f"{LVIS_GROUPS_TITLE}: " + ", ".join(f"{FREQUENCY_LABELS[k]} {freq.get(k, 0)}" for k in ("r", "c", "f"))
        )
    own = _count(c.get("file_frequency") for c in classes)
    if own:
        lines.append(
            "the file's own LVIS frequency field: "
            + ", ".join(f"{FREQUENCY_LABELS[k]} {own.get(k, 0)}" for k in ("r", "c", "f"))
        )
    return lines


def _count(values: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        if v in FREQUENCY_LABELS:
            out[v] = out.get(v, 0) + 1
    return out


def disagreement_text(report: dict) -> str:
    """ "N classes whose file frequency differs ..." when the report lists disagreements, else "".

    Nothing when the LVIS groups are hidden for the dataset's size (``frequency_scope``): the groups
    computed from so few images mostly reflect the size, so their disagreement with the file's own
    field (LVIS val files carry train's) is that same size artefact, not a finding.
    """
    dis = report.get("frequency_disagreements")
    if not isinstance(dis, list) or not dis or not lvis_groups_shown(report):
        return ""
    names = ", ".join(str(d.get("name", d.get("id", ""))) for d in dis[:5] if isinstance(d, dict))
    more = f" and {len(dis) - 5} more" if len(dis) > 5 else ""
    return (
        f"{len(dis)} class{'es' if len(dis) != 1 else ''} where the file's own LVIS frequency differs from "
        f"the one computed from image counts: {names}{more}"
    )


def anchor_summary_rows(anchors: dict) -> list[tuple[str, str]]:
    """Key anchor statistics (issue 3 JSON names) as ``(label, value)`` rows."""
    rows = []
    for key, label in (("preset", "preset"), ("matcher", "matcher"), ("device", "device")):
        if anchors.get(key) is not None:
            rows.append((label, str(anchors.get(key))))
    text = thresholds_text(anchors)
    if text:
        rows.append(
            ("matching rule" if (anchors.get("thresholds") or {}).get("anchor_t") is not None else "thresholds", text)
        )
    per_image = anchors.get("per_image") if isinstance(anchors.get("per_image"), dict) else {}
    total = anchors.get("anchors")
    for key, label in (
        ("images", "images"),
        ("anchors", "anchors"),
        ("foreground", "foreground (positive)"),
        ("ignored", "ignored"),
        ("background", "background (negative)"),
    ):
        if key in anchors:
            value = fmt_int(anchors.get(key))
            if key in ("foreground", "ignored", "background"):
                value += f" ({fmt_pct(anchors.get(key), total)})"
            if per_image.get(key) is not None:
                value += f"; {fmt_num(per_image.get(key))} per image"
            rows.append((label, value))
    if anchors.get("pos_neg_ratio") is not None:
        rows.append(("positive : negative anchors", f"1 : {fmt_num(_inverse(anchors.get('pos_neg_ratio')))}"))
    if anchors.get("task_pos_neg_ratio") is not None:
        rows.append(
            ("positive : negative tasks (sigmoid)", f"1 : {fmt_num(_inverse(anchors.get('task_pos_neg_ratio')))}")
        )
    boxes = anchors.get("boxes")
    for key in ("boxes_without_positive", "boxes_below_positive_iou", "boxes_below_negative"):
        if anchors.get(key) is None or (key == "boxes_below_negative" and _no_iou(anchors)):
            continue
        value = fmt_int(_scalar(anchors.get(key)))
        if boxes:
            value += f" of {fmt_int(boxes)} ({fmt_pct(_scalar(anchors.get(key)), boxes)})"
        rows.append((vocabulary.label(key), value))
    return rows


#: Coverage-table columns: the key in a coverage row and the vocabulary term naming it.
_COVERAGE_KEYS = (
    ("without_positive", "boxes_without_positive"),
    ("below_positive_iou", "boxes_below_positive_iou"),
    ("below_negative", "boxes_below_negative"),
)


def coverage_columns(anchors: dict) -> list[tuple[str, str]]:
    """``(row key, column header)`` of the coverage columns this anchor report has (YOLOv5: no IoU columns)."""
    by = (anchors.get("coverage") or {}).get("by_size") or {}
    first = next(iter(by.values()), {}) if by else {}
    keys = [k for k, _t in _COVERAGE_KEYS if k in first]
    if _no_iou(anchors):
        keys = [k for k in keys if k == "without_positive"]
    return [(k, vocabulary.term(t).column) for k, t in _COVERAGE_KEYS if k in keys]


def coverage_caption(anchors: dict) -> str:
    """What the coverage columns mean, from the vocabulary (one line per column shown)."""
    terms = dict(_COVERAGE_KEYS)
    return "\n".join(
        f"{vocabulary.term(terms[k]).column}: {vocabulary.meaning(terms[k])}" for k, _h in coverage_columns(anchors)
    )


def _no_iou(anchors: dict) -> bool:
    """True for presets that assign without IoU (YOLOv5's ratio test)."""
    return (anchors.get("thresholds") or {}).get("anchor_t") is not None


def _inverse(ratio: Any) -> float | None:
    r = num(ratio)
    return 1.0 / r if r > 0 else None


def _scalar(value: Any) -> Any:
    if isinstance(value, dict):
        for key in ("total", "count", "boxes"):
            if key in value:
                return value[key]
        return None
    return value


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------
def _csv(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def _histogram_csv(hist: dict, count_name: str) -> str:
    bins = histogram_bins(hist)
    if bins and all(end is None for _, end, _ in bins):
        return _csv(["value", count_name], ((_clean(s), _clean(c)) for s, _, c in bins))
    return _csv(["bin_start", "bin_end", count_name], ((_clean(s), _clean(e), _clean(c)) for s, e, c in bins))


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "inf" if v == math.inf else ("-inf" if v == -math.inf else "")
        if v == int(v) and abs(v) < 2**53:
            return int(v)
        return repr(v)
    return v


CLASS_COLUMNS = ["rank", "id", "name", "instances", "instance_share", "images", "frequency", "bags_group"]


def csv_tables(report: dict) -> dict[str, str]:
    """All CSV tables of ``report`` as ``{filename: csv text}``.

    ``classes.csv`` (one row per defined category, sorted by instances, with rank and
    share; extra scalar per-class keys are appended as columns), ``measures.csv``,
    ``objects_per_image.csv``, ``classes_per_image.csv``, ``scale_relative_{width,height,area}.csv``,
    ``scale_size_groups.csv``, ``location.csv`` (one row per cell, rows = y) and
    ``location_per_class.csv`` (non-empty cells) when present, and ``anchors_*.csv`` when
    the report carries anchor statistics. Only sections present in the report are written.
    """
    out: dict[str, str] = {}
    classes = sorted_classes(report)
    if "classes" in report:
        out["classes.csv"] = _classes_csv(classes)
    measures = report.get("measures")
    if isinstance(measures, dict):
        out["measures.csv"] = _csv(
            ["measure", "value", "description"],
            (
                (k, _clean(v) if isinstance(v, float) else v, MEASURE_INFO.get(k, (k, ""))[1])
                for k, v in measures.items()
                if not isinstance(v, (dict, list))
            ),
        )
    for key in ("objects_per_image", "classes_per_image"):
        if isinstance(report.get(key), dict):
            out[f"{key}.csv"] = _histogram_csv(report[key], "images")
    scale = report.get("scale")
    if isinstance(scale, dict):
        out.update(_scale_csvs(scale))
    loc = report.get("location")
    if isinstance(loc, dict) and loc.get("counts") is not None:
        out.update(_location_csvs(loc))
    anchors = report.get("anchors")
    if isinstance(anchors, dict) and anchors:
        out.update(_anchor_csvs(anchors, classes))
    return out


def _classes_csv(classes: list) -> str:
    """``classes.csv``: rank, id, name, instances, share, images, frequency, BAGS group, then any extra scalar key."""
    total = sum(num(c.get("instances")) for c in classes)
    extra: list[str] = []
    for c in classes:
        for k, v in c.items():
            if k not in CLASS_COLUMNS and k not in extra and not isinstance(v, (dict, list)):
                extra.append(k)
    rows = []
    for i, c in enumerate(classes):
        share = num(c.get("instances")) / total if total else None
        rows.append(
            [
                i + 1,
                c.get("id"),
                c.get("name"),
                c.get("instances"),
                None if share is None else _clean(share),
                c.get("images"),
                c.get("frequency"),
                c.get("bags_group"),
            ]
            + [c.get(k) for k in extra]
        )
    return _csv(CLASS_COLUMNS + extra, rows)


def _scale_csvs(scale: dict) -> dict[str, str]:
    """The relative-size histograms and ``scale_size_groups.csv``."""
    out = {}
    for key in ("relative_width", "relative_height", "relative_area"):
        if isinstance(scale.get(key), dict):
            out[f"scale_{key}.csv"] = _histogram_csv(scale[key], "boxes")
    groups = scale.get("size_groups")
    if isinstance(groups, dict):  # one definition (scale.size_groups_by), named in every row
        by = scale.get("size_groups_by") or "box"
        total = sum(num(groups.get(k)) for k in ("small", "medium", "large"))
        ranges = {"small": "< 32^2", "medium": "32^2 to < 96^2", "large": ">= 96^2"}
        measured = "area field (COCO eval)" if by == "area_field" else "box w*h"
        rows = [
            [k, ranges[k], measured, groups.get(k), _clean(num(groups.get(k)) / total) if total else None]
            for k in ("small", "medium", "large")
        ]
        out["scale_size_groups.csv"] = _csv(["group", "area_range_px", "area_of", "boxes", "share"], rows)
    return out


def _location_csvs(loc: dict) -> dict[str, str]:
    """``location.csv`` and, when the report has it, ``location_per_class.csv`` (non-empty cells)."""
    out = {"location.csv": _location_csv(loc.get("counts"))}
    per_class = loc.get("per_class")
    if isinstance(per_class, dict) and per_class:
        rows = []
        for cid, counts in per_class.items():
            for r in _location_rows(counts):
                if r[-1]:
                    rows.append([cid] + r)
        out["location_per_class.csv"] = _csv(
            ["category_id", "y_bin", "x_bin", "y_start", "y_end", "x_start", "x_end", "boxes"], rows
        )
    return out


def _location_rows(counts: Any) -> list[list[Any]]:
    grid = [_flat(r) for r in _flat(counts)]
    n_y = len(grid)
    rows = []
    for y, row in enumerate(grid):
        n_x = len(row)
        for x, c in enumerate(row):
            rows.append(
                [
                    y,
                    x,
                    round(y / n_y, 6),
                    round((y + 1) / n_y, 6),
                    round(x / n_x, 6),
                    round((x + 1) / n_x, 6),
                    _clean(float(c)),
                ]
            )
    return rows


def _location_csv(counts: Any) -> str:
    return _csv(["y_bin", "x_bin", "y_start", "y_end", "x_start", "x_end", "boxes"], _location_rows(counts))


def _coverage_csvs(coverage: dict, classes: list[dict]) -> dict[str, str]:
    """``anchors_coverage_by_size.csv`` and ``anchors_coverage_by_class.csv`` (with the class names)."""
    out = {}
    names = {str(c.get("id")): c.get("name") for c in classes}
    for key, label in (("by_size", "group"), ("by_class", "category_id")):
        table = coverage.get(key)
        if not isinstance(table, dict) or not table:
            continue
        cols: list[str] = []
        for v in table.values():
            for k in (v or {}) if isinstance(v, dict) else ():
                if k not in cols:
                    cols.append(k)
        header = [label] + (["name"] if key == "by_class" else []) + cols
        rows = []
        for k, v in table.items():
            v = v if isinstance(v, dict) else {}
            rows.append([k] + ([names.get(str(k))] if key == "by_class" else []) + [v.get(c) for c in cols])
        out[f"anchors_coverage_{key}.csv"] = _csv(header, rows)
    return out


def _anchor_csvs(anchors: dict, classes: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    summary = []
    for k, v in anchors.items():  # scalars, and the scalars of nested dicts as "key.sub"
        if isinstance(v, dict):
            if k in (
                "per_class_positive",
                "per_class_positive_per_image",
                "positives_per_instance",
                "instances_per_class",
                "coverage",
            ):
                continue
            summary += [(f"{k}.{sk}", sv) for sk, sv in v.items() if not isinstance(sv, (dict, list))]
        elif not isinstance(v, list):
            summary.append((k, v))
    out["anchors_summary.csv"] = _csv(
        ["statistic", "value", "meaning"],
        (
            (k, _clean(v) if isinstance(v, float) else v, vocabulary.meaning(k) if k in vocabulary.TERMS else "")
            for k, v in summary
        ),
    )
    levels = anchors.get("levels")
    if isinstance(levels, list) and levels:
        keys: list[str] = []
        for lv in levels:
            for k, v in (lv or {}).items():
                if k not in keys and not isinstance(v, (dict, list)):
                    keys.append(k)
        out["anchors_levels.csv"] = _csv(keys, ([(lv or {}).get(k) for k in keys] for lv in levels))
    pcp = anchors.get("per_class_positive")
    if isinstance(pcp, dict):
        by_id = {str(c.get("id")): c for c in classes}
        rows = []
        for cid, count in pcp.items():
            c = by_id.get(str(cid), {})
            inst = num(c.get("instances"))
            rows.append([cid, c.get("name"), count, c.get("instances"), _clean(num(count) / inst) if inst else None])
        rows.sort(key=lambda r: -num(r[2]))
        out["anchors_per_class.csv"] = _csv(
            ["category_id", "name", "positive_anchors", "instances", "positives_per_instance"], rows
        )
    coverage = anchors.get("coverage")
    if isinstance(coverage, dict):
        out.update(_coverage_csvs(coverage, classes))
    if isinstance(anchors.get("positive_iou"), dict):
        out["anchors_positive_iou.csv"] = _histogram_csv(anchors["positive_iou"], "anchors")
    if isinstance(anchors.get("negative_iou"), dict):
        out["anchors_negative_iou.csv"] = _histogram_csv(anchors["negative_iou"], "anchors")
    return out
