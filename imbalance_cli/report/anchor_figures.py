"""Anchor figures re-drawing the survey's anchor statistics (Oksuz et al., Imbalance Problems in Object Detection,
TPAMI 2021: Figs. 4a, 4b, 12a, 14).

``figures(anchors)`` takes the report's ``anchors`` dict (from
:func:`imbalance_cli.stats.anchors.anchor_statistics`) and returns
``[(filename, title, Figure, caption), ...]``:

* Fig. 4a: foreground / ignored / background anchors per image (log scale) and per pyramid level;
* Fig. 4b: positive anchors per class, classes sorted, log scale, next to instances per class, and
  positives per instance by class (the anchor long tail beside the instance long tail);
* Fig. 12a: IoU of positive anchors with their matched box (low-quality positives below the
  positive threshold visible), and negatives' best IoU over [0, neg_iou) with exact zeros apart;
* Fig. 14: relative spatial distribution of positives: top-left corners in the matched box's
  normalised frame;
* coverage: boxes with no anchor at or above the positive threshold / below the negative
  threshold, by COCO size group.

matplotlib is imported lazily; figures use the Agg canvas only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from imbalance_cli import vocabulary
from imbalance_cli.report._common import name_classes, names_fontsize, names_margin, new_figure, num, place, shown_names
from imbalance_cli.report.tables import _COVERAGE_KEYS as _COVERAGE_TERMS
from imbalance_cli.report.tables import coverage_columns, size_groups_label, size_groups_note

_FG, _IGN, _BG = "#d62728", "#ff7f0e", "#1f77b4"


def ratio_text(r: float | None) -> str | None:
    """A positive-to-negative ratio ``r`` as ``1:N`` (``N`` = 1 / r, no decimals from 10 on), ``0`` or None."""
    if r is None:
        return None
    if r <= 0:
        return "0"
    return f"1:{1 / r:,.0f}" if 1 / r >= 10 else f"1:{1 / r:.2f}"


def _log_axis(ax, values) -> None:
    """Log y axis whose floor sits just under the smallest positive value (zero bars stay empty)."""
    from matplotlib.ticker import NullLocator

    positive = [v for v in values if v > 0]
    ax.set_yscale("log")
    ax.yaxis.set_minor_locator(NullLocator())  # major ticks only: minor ones cost a tenth of the drawing
    if positive:
        ax.set_ylim(bottom=min(positive) / 2)


def foreground_background_figure(a: dict):
    """Fig. 4a: anchors per image by label (log scale) and anchors / positives per pyramid level."""
    fig = new_figure(9.0, 3.6, constrained=False)
    ax1, ax2 = fig.subplots(1, 2)
    place(fig, cols=2, left=0.8, right=0.6, top=0.4, bottom=0.65, wspace=0.9)
    pi = a.get("per_image") or {}
    labels = ["foreground", "ignored", "background"]
    vals = [num(pi.get(k)) for k in labels]
    bars = ax1.bar(labels, vals, color=[_FG, _IGN, _BG])
    _log_axis(ax1, vals)
    ax1.set_ylabel("anchors per image (mean)")
    ax1.set_title(f"(a) {a.get('preset', '')} anchors, {a.get('matcher', '')} matcher")
    for b, v in zip(bars, vals):
        ax1.annotate(f"{v:,.1f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    if a.get("pos_neg_ratio") is not None:
        ax1.text(
            0.02,
            0.98,
            f"pos:neg {ratio_text(a['pos_neg_ratio'])}\ntask pos:neg {ratio_text(a.get('task_pos_neg_ratio'))}",
            transform=ax1.transAxes,
            ha="left",
            va="top",
            fontsize=8,
        )
    levels = a.get("levels") or []
    names = [str(lv.get("name")) for lv in levels]
    x = list(range(len(levels)))
    w = 0.4
    level_anchors = [num(lv.get("anchors")) for lv in levels]
    level_fg = [num(lv.get("foreground")) for lv in levels]
    ax2.bar([i - w / 2 for i in x], level_anchors, w, color=_BG, label="anchors")
    ax2.bar([i + w / 2 for i in x], level_fg, w, color=_FG, label="positives")
    _log_axis(ax2, level_anchors + level_fg)
    ax2.set_xticks(x, [f"{n}\n(/{lv.get('stride')})" for n, lv in zip(names, levels)])
    ax2.set_title("(b) per pyramid level")
    ax3 = ax2.twinx()
    ax3.plot(x, [num(lv.get("best_level_boxes")) for lv in levels], "k.-", label="boxes whose best anchor is here")
    ax3.set_ylabel("boxes")
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    return fig


def positives_per_class_figure(a: dict, names: dict | None = None):
    """Fig. 4b: positives per class (sorted, log) with instances per class, and positives per instance, each class
    named on the axis (all up to 100 classes, else ranked with the first and last named)."""
    pos = {k: num(v) for k, v in (a.get("per_class_positive") or {}).items()}
    inst = {k: num(v) for k, v in (a.get("instances_per_class") or {}).items()}
    names = {str(k): str(v) for k, v in (names or a.get("class_names") or {}).items()}
    keys = [k for k in pos if inst.get(k, 0) > 0 or pos[k] > 0]
    keys.sort(key=lambda k: (-pos[k], k))
    ppi = a.get("positives_per_instance") or {}
    k2 = sorted(ppi, key=lambda k: (-num(ppi[k]), k))
    below = max(
        names_margin(
            shown_names([names.get(k, f"id {k}") for k in ks]), names_fontsize(len(ks)) if len(ks) <= 100 else 6.5
        )
        for ks in (keys, k2)
    )
    fig = new_figure(12.0, 5.2 + 2 * below, constrained=False)
    ax1, ax2 = fig.subplots(2, 1)
    place(fig, rows=2, left=0.8, right=0.2, top=0.4, bottom=below, hspace=below + 0.45)
    x = list(range(1, len(keys) + 1))  # rank 1 = most
    pos_values = [pos[k] for k in keys]
    inst_values = [inst.get(k, 0) for k in keys]
    ax1.bar(x, pos_values, color=_FG, width=0.85, label="positive anchors")
    ax1.plot(x, [v if v > 0 else float("nan") for v in inst_values], "k.", markersize=4, label="instances")
    _log_axis(ax1, pos_values + inst_values)
    ax1.set_xlabel(
        "class, sorted by positive anchors"
        if len(keys) <= 100
        else f"class rank by positive anchors (1 = most; {len(keys)} classes)"
    )
    ax1.set_ylabel("count (log scale)")
    ax1.set_title("(a) positive anchors per class (survey Fig. 4b)", loc="left", fontsize=11)
    ax1.legend(fontsize=8, loc="upper right")
    name_classes(ax1, [names.get(k, f"id {k}") for k in keys], pos_values, x0=1)
    v2 = [num(ppi[k]) for k in k2]
    ax2.bar(range(1, len(k2) + 1), v2, color="#9467bd", width=0.85)
    ax2.set_xlabel(
        "class, sorted by positives per instance"
        if len(k2) <= 100
        else f"class rank by positives per instance (1 = most; {len(k2)} classes)"
    )
    ax2.set_ylabel("positive anchors per instance")
    ax2.set_title("(b) positive anchors per instance, by class", loc="left", fontsize=11)
    name_classes(ax2, [names.get(k, f"id {k}") for k in k2], v2, x0=1)
    return fig


def iou_figure(a: dict):
    """Fig. 12a: IoU of positives with their matched box, and negatives' best IoU (exact zeros apart)."""
    fig = new_figure(9.0, 3.6, constrained=False)
    ax1, ax2 = fig.subplots(1, 2)
    place(fig, cols=2, left=0.8, right=0.2, top=0.4, bottom=0.6, wspace=0.9)
    pi = a.get("positive_iou") or {}
    e, c = pi.get("edges") or [], pi.get("counts") or []
    th = a.get("thresholds") or {}
    if c:
        ax1.bar(e[:-1], c, width=[e[i + 1] - e[i] for i in range(len(c))], align="edge", color=_FG, edgecolor="white")
        if th.get("pos_iou") is not None:
            ax1.axvline(num(th["pos_iou"]), color="k", ls="--", lw=1)
    if th.get("anchor_t") is not None:  # YOLOv5 assigns by width/height ratio: AutoAnchor's metric, not an IoU
        ax1.set_xlabel("width/height ratio metric min(r, 1/r) with the matched box")
        ax1.set_ylabel("positive entries (build_targets)")
        ax1.set_title(f"(a) positives: ratio test < anchor_t {th.get('anchor_t'):g} (no IoU)")
    else:
        ax1.set_xlabel("IoU with matched box")
        ax1.set_ylabel("positive anchors")
        ax1.set_title(f"(a) positives (low-quality below threshold: {pi.get('low_quality', 0):,})")
    ni = a.get("negative_iou") or {}
    e2, c2 = ni.get("edges") or [], ni.get("counts") or []
    if c2:
        neg_values = [num(v) for v in c2]
        ax2.bar(
            e2[:-1],
            neg_values,
            width=[e2[i + 1] - e2[i] for i in range(len(c2))],
            align="edge",
            color=_BG,
            edgecolor="white",
        )
        _log_axis(ax2, neg_values)
    sample = ni.get("sample_images")
    ax2.set_xlabel("best IoU of negative anchor")
    ax2.set_ylabel("negative anchors")
    ax2.set_title(f"(b) negatives, IoU > 0 ({'all' if ni.get('exact') else sample} images)")
    ax2.text(
        0.98, 0.95, f"IoU = 0: {int(num(ni.get('zero'))):,}", transform=ax2.transAxes, ha="right", va="top", fontsize=8
    )
    return fig


def spatial_figure(a: dict):
    """Fig. 14: 2-D histogram of positives' top-left corners ((x1a - x1g)/wg, (y1a - y1g)/hg)."""
    from matplotlib.patches import Rectangle

    sp = a.get("spatial") or {}
    counts = np.asarray(sp.get("counts") or [[0]], dtype=float)
    lo, hi = (sp.get("range") or [-1.0, 1.0])[:2]
    fig = new_figure(5.0, 4.4, constrained=False)
    ax = fig.subplots()
    place(fig, left=0.8, right=0.15, top=0.4, bottom=0.6)
    im = ax.imshow(counts, origin="upper", extent=(lo, hi, hi, lo), cmap="viridis", interpolation="nearest")
    ax.add_patch(Rectangle((0, 0), 1, 1, fill=False, ec="white", lw=1, ls="--"))
    ax.set_xlabel("(x1 anchor - x1 box) / box width")
    ax.set_ylabel("(y1 anchor - y1 box) / box height")
    ax.set_title("Positives' top-left corner in the box frame")
    fig.colorbar(im, ax=ax, label="positive anchors")
    if sp.get("outside"):
        ax.text(0.02, 0.02, f"outside range: {sp['outside']:,}", transform=ax.transAxes, color="white", fontsize=8)
    return fig


def _share(row: dict, k: str) -> float:
    """``row[k]`` as a percentage of ``row["boxes"]`` (0 without boxes)."""
    return 100.0 * num(row.get(k)) / num(row.get("boxes")) if num(row.get("boxes")) else 0.0


def coverage_figure(a: dict, names: dict | None = None):
    """Coverage: (a) by size group, the share of boxes without a positive anchor, below the positive IoU and below
    the negative IoU (the columns of :func:`imbalance_cli.report.tables.coverage_columns`, named by the
    vocabulary); (b) by class, the same shares, classes sorted by the first and named on the axis."""
    coverage = a.get("coverage") or {}
    by = coverage.get("by_size") or {}
    by_class = {k: v for k, v in (coverage.get("by_class") or {}).items() if num((v or {}).get("boxes"))}
    groups = [g for g in ("small", "medium", "large") if g in by]
    cols = coverage_columns(a)
    names = {str(k): str(v) for k, v in (names or a.get("class_names") or {}).items()}
    below = (
        names_margin(
            shown_names([names.get(c, f"id {c}") for c in by_class]),
            names_fontsize(len(by_class)) if len(by_class) <= 100 else 6.5,
        )
        if by_class
        else 0.6
    )
    fig = new_figure(12.0, 6.2 + below if by_class else 3.6, constrained=False)
    ax, axc = fig.subplots(2, 1, height_ratios=(1, 1.25)) if by_class else (fig.subplots(), None)
    place(fig, rows=2 if by_class else 1, left=0.8, right=0.2, top=0.4, bottom=below if by_class else 0.85, hspace=1.05)
    x = list(range(len(groups)))
    w = 0.8 / max(len(cols), 1)

    th = a.get("thresholds") or {}
    colours = {"without_positive": _FG, "below_positive_iou": _IGN, "below_negative": _BG}
    thr = {"below_positive_iou": f" ({th.get('pos_iou')})", "below_negative": f" ({th.get('neg_iou')})"}
    for i, (k, _head) in enumerate(cols):
        term = dict(_COVERAGE_TERMS)[k]
        ax.bar(
            [j + (i - (len(cols) - 1) / 2) * w for j in x],
            [_share(by[g], k) for g in groups],
            w,
            color=colours[k],
            label=vocabulary.label(term) + thr.get(k, ""),
        )
    ax.set_xticks(x, [f"{g}\n({int(num(by[g].get('boxes'))):,} boxes)" for g in groups])
    ax.set_xlabel(size_groups_label(coverage.get("size_groups_by")))
    ax.set_ylabel("% of boxes in the group")
    ax.set_title("(a) anchor coverage by size group", loc="left", fontsize=11)
    ax.legend(fontsize=7)
    if axc is not None:
        _coverage_by_class(axc, by_class, cols, colours, names)
    return fig


def _coverage_by_class(axc, by_class: dict, cols: list, colours: dict, names: dict) -> None:
    """Panel (b) of :func:`coverage_figure`: the coverage shares per class, sorted by the first IoU rule's share."""
    key = cols[1][0] if len(cols) > 1 else cols[0][0]  # below the positive IoU where there is an IoU rule
    order = sorted(by_class, key=lambda c: (-_share(by_class[c], key), -num(by_class[c].get("boxes")), c))
    xs = list(range(1, len(order) + 1))
    wc = 0.85 / max(len(cols), 1)
    for i, (k, _head) in enumerate(cols):
        axc.bar(
            [j + (i - (len(cols) - 1) / 2) * wc for j in xs],
            [_share(by_class[c], k) for c in order],
            wc,
            color=colours[k],
            label=vocabulary.label(dict(_COVERAGE_TERMS)[k]),
        )
    axc.set_ylabel("% of the class's boxes")
    axc.set_xlabel(
        "class, sorted by " + vocabulary.label(dict(_COVERAGE_TERMS)[key]).replace("boxes ", "share ")
        if len(order) <= 100
        else f"class rank ({len(order)} classes)"
    )
    axc.set_title("(b) anchor coverage by class", loc="left", fontsize=11)
    axc.legend(fontsize=7, loc="upper right")
    name_classes(axc, [names.get(c, f"id {c}") for c in order], [_share(by_class[c], key) for c in order], x0=1)


def figures(anchors: dict, names: dict | None = None) -> list[tuple[str, str, Any, str]]:
    """All anchor figures for the report's ``anchors`` dict: ``[(filename, title, Figure, caption)]``.

    ``names`` maps category ids (strings) to class names for the axis labels.
    """
    return [(f, t, build(), c) for f, t, build, c in figure_jobs(anchors, names)]


def figure_jobs(anchors: dict, names: dict | None = None) -> list[tuple[str, str, Any, str]]:
    """The anchor figures not drawn yet: ``[(filename, title, build, caption)]`` (``build()`` -> Figure)."""
    a = anchors or {}
    out = [
        (
            "fig4a_foreground_background.png",
            "Foreground-background imbalance (survey Fig. 4a)",
            lambda: foreground_background_figure(a),
            "(a) Mean foreground (positive), ignored and background anchors per image, log scale, with the anchor "
            "and the sigmoid-task pos:neg ratios (RS-loss supp. Table S7); (b) anchors, positives and boxes whose best "
            "anchor lies on each pyramid level. Survey Fig. 4a.",
        ),
        (
            "fig4b_positives_per_class.png",
            "Positive anchors per class (survey Fig. 4b)",
            lambda: positives_per_class_figure(a, names),
            "(a) Positive anchors per class, classes sorted, log scale, with the instances per class (dots); "
            "(b) positive anchors per instance by class: the anchor long tail beside the instance long tail.",
        ),
        (
            "fig12a_anchor_iou.png",
            "IoU distribution of anchors (survey Fig. 12a)",
            lambda: iou_figure(a),
            "(a) IoU of positive anchors with their matched box in 0.05 bins (low-quality positives below the "
            "threshold visible); (b) best IoU of negative anchors over [0, negative threshold) with exactly-zero "
            "IoU counted apart (the bins IoU-based hard negative sampling uses).",
        ),
        (
            "fig14_positive_spatial.png",
            "Relative spatial distribution of positives (survey Fig. 14)",
            lambda: spatial_figure(a),
            "Top-left corner of each positive anchor in its matched box's normalised frame; the dashed square is "
            "the box. Survey Fig. 14.",
        ),
        (
            "anchor_coverage.png",
            "Anchor coverage by size group and by class",
            lambda: coverage_figure(a, names),
            "Share of boxes, (a) by size group ("
            + size_groups_note((a.get("coverage") or {}).get("size_groups_by"))
            + ") and (b) by class: "
            + "; ".join(
                f"{vocabulary.label(dict(_COVERAGE_TERMS)[k])}: {vocabulary.meaning(dict(_COVERAGE_TERMS)[k])}"
                for k, _h in coverage_columns(a)
            )
            + ".",
        ),
    ]
    return out
