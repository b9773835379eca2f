"""Renderers of an ``imbalance.stats/1`` report dict: terminal summary, JSON, CSV, PNG, HTML.

Renderers know the report and nothing about how it was computed.

* :func:`render_terminal` prints a rich summary;
* :func:`write_outputs` writes ``stats.json``, the CSV tables, the PNG figures (survey
  Figs. 5, 7, 13 and, with anchors, 4, 12a, 14) and a self-contained ``report.html``.

Heavy imports (rich, matplotlib, numpy) happen inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["render_terminal", "write_outputs"]


def render_terminal(report: dict, console=None) -> None:
    """Print the readable summary of ``report`` (see :func:`imbalance_cli.report.tables.render_terminal`)."""
    from imbalance_cli.report.tables import render_terminal as _render

    _render(report, console)


def write_outputs(report: dict, out_dir: str | os.PathLike, dpi: int = 110) -> list[Path]:
    """Write the report directory and return the written paths (in writing order).

    Files: ``stats.json`` (the report), the CSV tables of
    :func:`imbalance_cli.report.tables.csv_tables`, one PNG per figure of
    :func:`imbalance_cli.report.figures.figures`, and ``report.html`` with every figure
    embedded. Everything is rendered in memory first, so a failure while building (bad
    report, plotting error) writes nothing; each file is then written atomically (temporary
    sibling + rename), so an interrupted run never leaves a half-written file.
    """
    from imbalance_cli.errors import InputError
    from imbalance_cli.fileio import dumps_json, write_bytes, write_text
    from imbalance_cli.report.figures import render_figures
    from imbalance_cli.report.html import render_html
    from imbalance_cli.report.tables import csv_tables

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError("--out must be a directory, not an existing file", path=str(out))

    stats_text = dumps_json(report)
    tables = csv_tables(report)
    rendered = render_figures(report, dpi=dpi)
    page = render_html(report, rendered)

    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as e:
        raise InputError(f"cannot create output directory: {e.strerror or e}", path=str(out)) from None
    written = [write_text(out / "stats.json", stats_text)]
    for name, text in tables.items():
        written.append(write_text(out / name, text))
    for fig in rendered:
        written.append(write_bytes(out / fig.filename, fig.png))
    written.append(write_text(out / "report.html", page))
    return written
