"""Terminal tables (rich) for the report's ``anchors`` section (survey Fig. 4 in numbers).

``render(anchors, console)`` prints: the foreground/background summary (totals, per-image means,
pos:neg anchor and task ratios), the per-level table, the IoU histograms as sparklines, coverage
by COCO size group, and the classes with the fewest positives per instance.
"""

from __future__ import annotations

from typing import Any

from imbalance_cli import vocabulary
from imbalance_cli.report.tables import (
    anchor_summary_rows,
    coverage_caption,
    coverage_columns,
    fmt_int,
    fmt_num,
    fmt_pct,
    size_groups_label,
    sparkline,
)


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


def render(anchors: dict, console=None, worst: int = 5, names: dict | None = None) -> None:
    """Print the anchor statistics to a rich ``console`` (a new stdout console when None).

    ``names`` maps category ids (as strings, the keys of the anchor dicts) to class names, so the
    tables name classes (the stats renderer passes the report's ``classes``); ids are shown beside.
    """
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    a = anchors or {}
    t = Table(
        title="Anchors: foreground vs background (survey Fig. 4a)",
        show_header=False,
        title_justify="left",
        box=None,
        padding=(0, 2),
    )
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    for label, value in anchor_summary_rows(a):
        t.add_row(label, value)
    ni = a.get("negative_iou") or {}
    if ni:
        t.add_row(
            "negative IoU histogram",
            "all images" if ni.get("exact") else f"sample of {fmt_int(ni.get('sample_images'))} images",
        )
    console.print(t)

    _print_levels(console, a.get("levels") or [])

    _print_iou(console, a, ni)
    _print_coverage(console, a)
    _print_worst(console, a, worst, names)


def _print_iou(console, a: dict, ni: dict) -> None:
    """The positives' and negatives' IoU histograms as sparklines (YOLOv5: the ratio metric of its entries)."""
    from rich.table import Table

    ht = Table(
        title="IoU distributions (survey Fig. 12a)", show_header=False, title_justify="left", box=None, padding=(0, 2)
    )
    ht.add_column(style="cyan", no_wrap=True)
    ht.add_column(no_wrap=True)
    ht.add_column()
    pi = a.get("positive_iou") or {}
    if pi.get("counts"):
        if (a.get("thresholds") or {}).get("anchor_t") is not None:  # YOLOv5: no IoU, AutoAnchor's ratio metric
            ht.add_row(
                "positives, w/h ratio metric 0..1",
                sparkline(pi["counts"], log=True),
                "min(r, 1/r) of each entry (YOLOv5 assigns by ratio, not IoU)",
            )
        else:
            ht.add_row(
                "positives, IoU 0..1",
                sparkline(pi["counts"], log=True),
                f"{fmt_int(pi.get('low_quality'))} {vocabulary.label('low_quality')}",
            )
    if ni.get("counts"):
        e = ni.get("edges") or [0, 0]
        ht.add_row(
            f"negatives, IoU 0..{fmt_num(e[-1])}",
            sparkline(ni["counts"], log=True),
            f"{fmt_int(ni.get('zero'))} with IoU exactly 0",
        )
    if ht.row_count:
        console.print(ht)


def _print_worst(console, a: dict, worst: int, names: dict | None) -> None:
    """The ``worst`` classes by positive anchors per instance."""
    from rich.table import Table

    ppi = a.get("positives_per_instance") or {}
    if not ppi or worst <= 0:
        return
    pcp = a.get("per_class_positive") or {}
    inst = a.get("instances_per_class") or {}
    keys = sorted(ppi, key=lambda k: (_f(ppi[k]), k))[:worst]
    names = {str(k): str(v) for k, v in (names or a.get("class_names") or {}).items()}
    wt = Table(title=f"Fewest positive anchors per instance ({len(keys)} classes)", title_justify="left")
    wt.add_column("class", style="cyan")
    for col in ("id", "instances", "positives", "per instance"):
        wt.add_column(col, justify="right", style="dim" if col == "id" else None)
    for k in keys:
        wt.add_row(names.get(str(k), f"id {k}"), str(k), fmt_int(inst.get(k)), fmt_int(pcp.get(k)), fmt_num(ppi[k]))
    console.print(wt)


def _print_levels(console, levels: list) -> None:
    """The per-pyramid-level table (anchors, positives, boxes best matched there); nothing when there are no levels."""
    from rich.table import Table

    if levels:
        lt = Table(title="Anchors per pyramid level (survey §5.4.1)", title_justify="left")
        for col in ("level", "stride", "anchors", "positives", "pos. share", "boxes best here"):
            lt.add_column(col, justify="left" if col == "level" else "right")
        for lv in levels:
            lt.add_row(
                str(lv.get("name")),
                fmt_int(lv.get("stride")),
                fmt_int(lv.get("anchors")),
                fmt_int(lv.get("foreground")),
                fmt_pct(lv.get("foreground"), lv.get("anchors")),
                fmt_int(lv.get("best_level_boxes")),
            )
        console.print(lt)


def _print_coverage(console, a: dict) -> None:
    """The coverage-by-size table of the anchor statistics ``a``; nothing when it has no ``coverage.by_size``."""
    from rich.table import Table

    coverage = a.get("coverage") or {}
    cov = coverage.get("by_size") or {}
    if cov:
        ct = Table(
            title=f"Coverage by {size_groups_label(coverage.get('size_groups_by'))}",
            title_justify="left",
            caption=coverage_caption(a),
            caption_justify="left",
        )
        cols = coverage_columns(a)
        ct.add_column("size")
        ct.add_column("boxes", justify="right")
        for _key, head in cols:
            ct.add_column(head, justify="right")
        for g, v in cov.items():
            ct.add_row(
                g,
                fmt_int(v.get("boxes")),
                *(f"{fmt_int(v.get(k))} ({fmt_pct(v.get(k), v.get('boxes'))})" for k, _h in cols),
            )
        console.print(ct)
