"""Renderer of a report's ``advice`` ("What to change", :mod:`imbalance_cli.check.advice`): terminal and HTML.

Every measured quantity is named and formatted through :mod:`imbalance_cli.vocabulary` (its label and unit), as
in every other part of the report.
"""

from __future__ import annotations

from html import escape
from typing import Any

from imbalance_cli import vocabulary
from imbalance_cli.report.page import Section, table

#: Units shown as a percentage.
_SHARE_UNITS = ("share of boxes", "share of batches", "share of small boxes")


def _unit(metric: dict) -> str:
    return metric.get("unit") or (vocabulary.unit(metric["measure"]) if metric["measure"] in vocabulary.TERMS else "")


def fmt_value(value: Any, unit: str) -> str:
    """A measured value in its unit: shares as percentages, counts as integers, other numbers to 4 digits."""
    if value is None:
        return "n/a"
    if unit in _SHARE_UNITS:
        return f"{100 * float(value):.1f}%"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and unit in ("boxes", "images")):
        return f"{int(value):,}"
    return f"{float(value):,.0f}" if abs(float(value)) >= 1000 else f"{float(value):.4g}"


def metric_label(metric: dict) -> str:
    """The vocabulary label of a measured effect, with its group (``coverage (small)``)."""
    key = metric["measure"]
    text = vocabulary.label(key) if key in vocabulary.TERMS else key.replace("_", " ")
    return f"{text} ({metric['group']})" if metric.get("group") else text


def finding_text(f: dict) -> str:
    """One line: the rule, the measured value against the threshold, the survey section, the words."""
    share = f.get("count") is not None
    value = f"{100 * f['value']:.2f}%" if share else f"{f['value']:,.4g}"
    thr = f"{100 * f['threshold']:.2f}%" if share else f"{f['threshold']:,.4g}"
    group = " (small boxes)" if f.get("group") else ""
    return f"{f['rule']}{group}: {value} against threshold {thr} (survey {f['survey']}) — {f['text']}"


def effect_text(e: dict) -> str:
    """One line: each measured quantity before -> after (or why the effect is not measured)."""
    if not e.get("measured"):
        how = f"; measure it with: {e['how']}" if e.get("how") else ""
        return f"not measured: {e['why']}{how}"
    parts = [
        f"{metric_label(m)} {fmt_value(m['before'], _unit(m))} -> {fmt_value(m['after'], _unit(m))}"
        for m in e["metrics"]
    ]
    where = f" (on {e['images']:,} images" + (f", {e['boxes']:,} boxes" if e.get("boxes") else "") + ")"
    return "; ".join(parts) + where


def render_terminal(advice: dict, console) -> None:
    """Print the advice items (finding, fix with its commands and first snippet, measured effect)."""
    from rich.table import Table
    from rich.text import Text

    items = advice.get("items") or []
    t = Table(
        title=f"What to change (thresholds: {advice.get('rules', 'defaults')} rules; ordered by the measured "
        "size of the problem)",
        title_justify="left",
        show_header=False,
        box=None,
        padding=(0, 1),
    )
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    if not items:
        t.add_row("", Text("no rule fired: nothing to change", style="green"))
    for k, it in enumerate(items, 1):
        t.add_row(f"{k}.", Text(f"{it['title']} (size {100 * it['size']:.1f}%)", style="bold"))
        t.add_row("finding", finding_text(it["finding"]))
        fix = Text(it["fix"]["text"])
        for cmd in it["fix"].get("commands") or []:
            fix.append("\n$ " + cmd, style="magenta")
        snippets = it["fix"].get("snippets") or []
        if snippets and snippets[0]["framework"] != "imbalance":
            fix.append(f"\n# {snippets[0]['framework']}:\n" + snippets[0]["text"].rstrip("\n"), style="dim")
        t.add_row("fix", fix)
        t.add_row("effect", Text(effect_text(it["effect"]), style="green" if it["effect"].get("measured") else "dim"))
    console.print(t)


def section(advice: dict) -> Section:
    """The HTML section "What to change": one card per item (finding, fix, commands, snippets, effect table)."""
    items = advice.get("items") or []
    parts = [
        f'<p class="sub">Thresholds: {escape(str(advice.get("rules", "defaults")))} rules of '
        "<code>imbalance check</code>; items ordered by the measured size of the problem; every effect "
        "measured on this data in this run where the tool can measure it.</p>"
    ]
    if not items:
        parts.append('<p class="note">No rule fired: nothing to change.</p>')
    entries = []
    for k, it in enumerate(items, 1):
        aid = f"advice-{it['id'].replace('_', '-')}"
        entries.append((aid, it["title"]))
        e = it["effect"]
        body = [
            f'<div class="advice" id="{escape(aid)}"><h3>{k}. {escape(it["title"])} '
            f'<span class="badge">{100 * it["size"]:.1f}%</span></h3>',
            f"<p><b>Finding.</b> {escape(finding_text(it['finding']))}</p>",
            f"<p><b>Fix.</b> {escape(it['fix']['text'])}</p>",
        ]
        if it["fix"].get("paper"):
            base = it["fix"].get("baseline")
            body.append(
                f'<p class="note">{escape(it["fix"]["paper"])}'
                + (
                    f"; baseline {escape(base)}"
                    + (f" ({escape(it['fix']['baseline_paper'])})" if it["fix"].get("baseline_paper") else "")
                    if base
                    else ""
                )
                + "</p>"
            )
        cmds = it["fix"].get("commands") or []
        if cmds:
            body.append("<pre>" + escape("\n".join("$ " + c for c in cmds)) + "</pre>")
        for sn in it["fix"].get("snippets") or []:
            exact = "" if sn.get("exact", True) else " (numbers only: that framework's own rounding applies)"
            body.append(
                f'<p class="note">{escape(sn["framework"])} ({escape(sn["language"])}){escape(exact)}</p>'
                f"<pre>{escape(sn['text'])}</pre>"
            )
        body.append(_effect_html(e))
        body.append("</div>")
        parts.append("".join(body))
    return Section("advice", "What to change", "".join(parts), entries)


def _effect_html(e: dict) -> str:
    """An item's effect: the measured before/after table with its sample and method, or why it is not measured."""
    if not e.get("measured"):
        return f"<p><b>Effect.</b> {escape(effect_text(e))}</p>"
    rows = [
        [(metric_label(m), ""), (fmt_value(m["before"], _unit(m)), "n"), (fmt_value(m["after"], _unit(m)), "n")]
        for m in e["metrics"]
    ]
    measured = (
        "<p><b>Effect, measured.</b> "
        + escape(e.get("method", ""))
        + "</p>"
        + table([("quantity", ""), ("before", "n"), ("after", "n")], rows)
    )
    extra = [f"{e['images']:,} images"] + ([f"{e['boxes']:,} boxes"] if e.get("boxes") else [])
    if e.get("iterations") is not None:
        extra.append(f"{e['iterations']} search iterations ({e.get('stopped')})")
    if e.get("verdict"):
        extra.append(e["verdict"])
    return measured + f'<p class="note">{escape("; ".join(extra))}</p>'
