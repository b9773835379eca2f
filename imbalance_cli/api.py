"""The public Python API behind ``imbalance_cli.load`` / ``imbalance_cli.analyze``.

This module sits on top of every layer (like the commands): it may use the analyses and the
renderers together. ``analyze`` returns a :class:`Report`, the analysis' plain-data
:class:`imbalance_cli.stats.Report` plus :meth:`Report.save`, which hands the dict to the
renderer :func:`imbalance_cli.report.stats.write_outputs`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imbalance_cli.data import load
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.report.stats import write_outputs
from imbalance_cli.stats import report as _stats_report

__all__ = ["load", "analyze", "Report"]


class Report(_stats_report.Report):
    """The result of :func:`analyze`: the ``imbalance.stats/1`` dict, pandas views and :meth:`save`."""

    @classmethod
    def of(cls, report: _stats_report.Report) -> "Report":
        """The same report data (not copied) as this class."""
        new = cls.__new__(cls)
        new._data = report._data
        return new

    def save(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write stats.json, CSV tables, PNG figures and report.html into ``out_dir`` (the directory is swapped in
        whole, see :func:`imbalance_cli.report.writer.write_report`); return the paths."""
        return write_outputs(self.to_dict(), out_dir)


def analyze(dataset: Dataset, **options: Any) -> Report:
    """:func:`imbalance_cli.stats.analyze` (same options), returning a :class:`Report` that can :meth:`~Report.save`."""
    return Report.of(_stats_report.analyze(dataset, **options))
