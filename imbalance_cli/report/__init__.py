"""The renderer layer: everything that draws, tabulates or writes a report.

Analyses (``imbalance_cli.stats``) return plain report dicts; the modules here know those dicts
and nothing about how they were computed. One module per analysis, each with
``render_terminal(report, console)`` and ``write_outputs(report, out_dir, ...)``:

* :mod:`~imbalance_cli.report.stats` (``imbalance.stats/1``; its tables, figures and HTML page live
  in :mod:`.tables`, :mod:`.figures`, :mod:`.html`, the anchor section in :mod:`.anchors`);
* :mod:`.margins`, :mod:`.groups`, :mod:`.compare`, :mod:`.batches`.

Shared: :mod:`.figures` (``new_figure`` / ``RenderedFigure``, the one figure type: a matplotlib
Figure on the Agg canvas rendered to PNG bytes) and :mod:`.writer` (``write_report``, the one
writer: a report directory is written beside ``--out`` and swapped in whole). matplotlib and rich
are imported only in this package, lazily, so ``imbalance --help`` stays fast.
"""

from __future__ import annotations

from imbalance_cli.report.stats import render_terminal, write_outputs

__all__ = ["render_terminal", "write_outputs"]
