"""The one HTML page template every report uses (``stats``' report.html, ``anchors``' report.html, ``splits.html``).

A page is a header (the same on every page: the tool, the kind of report, the title, one line of facts), a table
of contents linking every section (and the entries inside a section, e.g. each figure), the sections, and a
footer. A section is plain data, :class:`Section`, so a report adds one by appending to its list: renderers build
their sections and call :func:`render_page`; the stats page also takes ``extra_sections`` from its callers.

Self-contained: CSS inline, no scripts, fonts or images from outside (figures are data URIs), so a page can be
mailed, attached to a CI run or opened offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, field
from html import escape
from typing import Iterable

from imbalance_cli import __version__

CSS = """
:root { --fg:#1d2330; --muted:#5d6678; --line:#e2e6ee; --bg:#f6f7fb; --card:#ffffff;
        --ok:#1a7f37; --moderate:#9a6700; --severe:#cf222e; --accent:#3b5bdb; }
* { box-sizing: border-box; }
html { scroll-behavior: smooth; }
body { margin:0; background:var(--bg); color:var(--fg);
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.page { display: grid; grid-template-columns: 230px minmax(0, 1fr); max-width: 1440px; margin: 0 auto; }
nav.toc { position: sticky; top: 0; align-self: start; max-height: 100vh; overflow-y: auto;
          padding: 24px 12px 24px 20px; font-size: 13.5px; border-right: 1px solid var(--line); }
nav.toc b { display: block; font-size: 12px; text-transform: uppercase; letter-spacing: .06em; color: var(--muted);
            margin-bottom: 6px; }
nav.toc ol { list-style: none; margin: 0; padding: 0; }
nav.toc ol ol { padding-left: 12px; margin: 2px 0 6px; font-size: 12.5px; }
nav.toc li { margin: 3px 0; }
nav.toc a { color: var(--fg); text-decoration: none; }
nav.toc a:hover { color: var(--accent); text-decoration: underline; }
main { min-width: 0; padding: 24px 28px 48px; }
header.top { margin-bottom: 8px; }
header.top .brand { font-size: 12.5px; font-weight: 650; letter-spacing: .05em; text-transform: uppercase;
                    color: var(--accent); }
h1 { font-size: 26px; margin: 2px 0 4px; }
h2 { font-size: 19px; margin: 34px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h2 a.anchor, h3 a.anchor { color: var(--line); text-decoration: none; margin-left: 6px; font-weight: 400; }
h2:hover a.anchor, h3:hover a.anchor { color: var(--muted); }
h3 { font-size: 15px; margin: 0 0 8px; }
section { scroll-margin-top: 12px; }
.sub { color: var(--muted); margin: 0 0 18px; word-break: break-all; }
.note { color: var(--muted); font-size: 12.5px; margin: 6px 0 0; white-space: pre-line; }
.top-link { font-size: 12px; text-align: right; margin: 8px 0 0; }
.top-link a { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .v { font-size: 22px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .k { color: var(--muted); font-size: 12.5px; }
.verdicts { list-style: none; padding: 0; margin: 0; display: grid; gap: 8px; }
.verdicts li { background: var(--card); border: 1px solid var(--line); border-left-width: 5px;
               border-radius: 8px; padding: 9px 12px; }
.verdicts li.ok, .verdicts li.better { border-left-color: var(--ok); }
.verdicts li.moderate, .verdicts li.trade-off { border-left-color: var(--moderate); }
.verdicts li.severe, .verdicts li.no-gain { border-left-color: var(--severe); }
.verdicts li.undetermined { border-left-color: var(--muted); }
.badge { display: inline-block; min-width: 78px; font-size: 11.5px; font-weight: 700; letter-spacing: .04em;
         text-transform: uppercase; border-radius: 999px; padding: 1px 8px; margin-right: 8px; text-align: center;
         color: #fff; background: var(--muted); }
.badge.ok, .badge.better { background: var(--ok); } .badge.moderate, .badge.trade-off { background: var(--moderate); }
.badge.severe, .badge.no-gain { background: var(--severe); }
.vt { font-weight: 600; margin-right: 6px; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; align-items: start; }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line);
        border-radius: 8px; overflow: hidden; font-size: 13.5px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: #eef1f7; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.m { color: var(--muted); }
tr:last-child td { border-bottom: none; }
.wide { overflow-x: auto; }
.spark { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; color: var(--accent); white-space: pre; }
pre { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px;
      overflow-x: auto; font-size: 12.5px; }
figure { background: var(--card); border: 1px solid var(--line); border-radius: 10px; margin: 0 0 16px; padding: 12px;
         scroll-margin-top: 12px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 8px; }
figcaption b { color: var(--fg); }
.figs2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
.figs2 figure { margin: 0; }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; font-size: 12px; font-weight: 600; color: #fff; }
.tag.r { background: #d62728; } .tag.c { background: #ff7f0e; } .tag.f { background: #1f77b4; }
.advice { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px;
          margin: 0 0 14px; scroll-margin-top: 12px; }
.advice p { margin: 6px 0; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.gallery figure { margin: 0; flex: 0 1 auto; max-width: 100%; }
img.strip { display: block; max-width: 100%; height: auto; }
.swatch { display: inline-block; width: 12px; height: 10px; border: 3px solid; margin: 0 4px 0 8px;
          vertical-align: middle; }
footer { color: var(--muted); font-size: 12.5px; margin-top: 36px; }
@media (max-width: 900px) {
  .page { display: block; }
  nav.toc { position: static; max-height: none; border-right: none; border-bottom: 1px solid var(--line); }
}
"""


@dataclass
class Section:
    """One section of a page: its anchor ``id``, ``title`` (the heading and the table-of-contents entry), its
    ``html`` body, and ``entries`` (``(anchor id, title)`` of the items inside it the contents also list)."""

    id: str
    title: str
    html: str
    entries: list[tuple[str, str]] = field(default_factory=list)


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def anchor_id(text: str) -> str:
    """An HTML id from any text (a file name, a title): lower case, letters, digits and dashes."""
    out = "".join(c.lower() if c.isalnum() else "-" for c in str(text))
    return "-".join(p for p in out.split("-") if p) or "section"


def table(header: list[tuple[str, str]], rows: Iterable[Iterable[tuple[str, str]]]) -> str:
    """An HTML table; cells are ``(text, css class)``; text is escaped here."""
    head = "".join(f'<th class="{c}">{escape(h)}</th>' for h, c in header)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{escape(str(v))}</td>' for v, c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure_html(fig_id: str, png: bytes, title: str, caption: str = "", filename: str = "") -> str:
    """A ``<figure>`` with an id (a contents entry), the embedded PNG, its title and caption."""
    more = escape(caption if caption and caption != title else "")
    name = f' <span class="m">({escape(filename)})</span>' if filename else ""
    return (
        f'<figure id="{escape(fig_id)}"><img src="{data_uri(png)}" alt="{escape(title)}">'
        f"<figcaption><b>{escape(title)}.</b> {more}{name}</figcaption></figure>"
    )


def verdict_item(level: str, what: str, message: str) -> str:
    """One verdict line (a badge coloured by level, the type, the message)."""
    css = anchor_id(level)
    return (
        f'<li class="{css}"><span class="badge {css}">{escape(level)}</span>'
        f'<span class="vt">{escape(what)}</span>{escape(message)}</li>'
    )


def render_page(
    *, kind: str, title: str, facts: Iterable[str], sections: list[Section], footer: str = "", facts_html: bool = False
) -> str:
    """The complete page: the shared header (``imbalance · kind``, ``title``, ``facts`` joined by " · "), the
    table of contents of ``sections`` (with their entries), the sections and the footer (plus the generator
    line every page carries). ``facts`` are escaped unless ``facts_html``."""
    facts = [f if facts_html else escape(str(f)) for f in facts]
    toc = []
    for s in sections:
        sub = "".join(f'<li><a href="#{escape(i)}">{escape(t)}</a></li>' for i, t in s.entries)
        toc.append(
            f'<li><a href="#{escape(s.id)}">{escape(s.title)}</a>' + (f"<ol>{sub}</ol>" if sub else "") + "</li>"
        )
    body = "\n".join(
        f'<section id="{escape(s.id)}"><h2>{escape(s.title)}<a class="anchor" href="#{escape(s.id)}" '
        f'aria-label="link to this section">#</a></h2>\n{s.html}\n'
        f'<p class="top-link"><a href="#top">↑ contents</a></p></section>'
        for s in sections
    )
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    foot = f"Generated by imbalance-cli {escape(__version__)} on {stamp}. " + footer
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f'<body id="top"><div class="page">\n<nav class="toc" aria-label="contents"><b>Contents</b>'
        f"<ol>{''.join(toc)}</ol></nav>\n<main>\n"
        f'<header class="top"><div class="brand">imbalance · {escape(kind)}</div><h1>{escape(title)}</h1>'
        f'<p class="sub">{" · ".join(facts)}</p></header>\n{body}\n<footer>{foot}</footer>\n'
        "</main></div></body></html>\n"
    )
