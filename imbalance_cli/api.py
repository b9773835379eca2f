"""The public Python API behind ``imbalance_cli.load`` / ``imbalance_cli.analyze``.

This module sits on top of every layer (like the commands): it may use the analyses and the
renderers together. ``analyze`` returns a :class:`Report`, the analysis' plain-data
:class:`imbalance_cli.stats.Analysis` plus :meth:`Report.save`, which hands the dict to the
renderer :func:`imbalance_cli.report.stats.write_outputs`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imbalance_cli.check.advice import DEFAULT_BUDGET, advise
from imbalance_cli.check.rules import Rules, load_rules
from imbalance_cli.data import load
from imbalance_cli.data.dataset import Dataset
from imbalance_cli.fileio import to_jsonable
from imbalance_cli.report.gallery import GalleryOptions
from imbalance_cli.report.stats import write_outputs
from imbalance_cli.stats.analysis import Analysis
from imbalance_cli.stats.analysis import analyze as _analyze
from imbalance_cli.stats.gallery import DEFAULT_IMAGES as DEFAULT_GALLERY

__all__ = ["load", "analyze", "Report"]


class Report(Analysis):
    """The result of :func:`analyze`: the ``imbalance.stats/1`` dict, pandas views and :meth:`save`."""

    @classmethod
    def of(cls, report: Analysis) -> "Report":
        """The same report data (not copied) as this class."""
        new = cls.__new__(cls)
        new._data = report._data
        new.box_table = report.box_table
        return new

    def save(
        self, out_dir: str | os.PathLike, gallery: int = DEFAULT_GALLERY, images: str | os.PathLike | None = None
    ) -> list[Path]:
        """Write stats.json, CSV tables, PNG figures, report.html and (with anchors) the per-box table
        ``boxes.parquet`` and the gallery (at most ``gallery`` images, 0: none; pixels from ``images`` for a
        COCO-style file) into ``out_dir`` (the directory is swapped in whole, see
        :func:`imbalance_cli.report.writer.write_report`); return the paths."""
        opts = GalleryOptions(int(gallery), None if images is None else Path(images))
        return write_outputs(self.to_dict(), out_dir, box_table=self.box_table, gallery=opts)


def analyze(
    dataset: Dataset,
    *,
    advice: bool = False,
    advice_budget: float = DEFAULT_BUDGET,
    rules: str | os.PathLike | Rules | None = None,
    **options: Any,
) -> Report:
    """:func:`imbalance_cli.stats.analyze` (same options), returning a :class:`Report` that can :meth:`~Report.save`.

    ``advice=True`` adds "What to change" (:func:`imbalance_cli.check.advice.advise`: the check rules' thresholds
    from ``rules``, a rules file or :class:`~imbalance_cli.check.rules.Rules`; the anchor search bounded by
    ``advice_budget`` seconds), as ``imbalance stats`` does by default.
    """
    report = Report.of(_analyze(dataset, **options))
    if advice:
        r = rules if isinstance(rules, Rules) or rules is None else load_rules(rules)
        anchors = report.box_table.anchors if report.box_table is not None else None
        found = advise(
            report.to_dict(),
            dataset,
            anchors,
            r,
            advice_budget,
            None if rules is None or isinstance(rules, Rules) else str(rules),
        )
        report._data["advice"] = to_jsonable(found)
    return report
