"""Effective Class-Margins per class: the inputs of the ECM loss (Cho & Krähenbühl, Effective Class-Margins, ECCV 2022).

For every class ``c`` with ``n+ = n_c`` training instances (Cho & Krähenbühl, ECCV 2022, supp. F, Eqs. 35-37):

* background count ``n_bg = r * sum_c n_c`` with ``r`` the background/foreground ratio of the
  detector's classification layer (``--fg-bg-ratio``, or measured from the anchors of a preset);
* ``n- = (sum over all classes and background of n) - n+``;
* margins (Eq. 8): ``gamma+ = n-^(1/4) / (n+^(1/4) + n-^(1/4))``, ``gamma- = 1 - gamma+``;
* surrogate-score weights (Eq. 11): ``w+- = 1 / gamma+-``; log-margins ``m+- = log w+-``;
* detection weight ``a * log((1 + a) / a)`` with ``a = n- / n+`` (the lower end of the range of
  ``m_c`` in §4.1, as the authors' code uses).

A class without instances enters the formulas as n+ = 1 (so its margins stay finite); its row keeps
the true count under ``instances`` and the exports use the true counts.

One-stage detectors leave the background out (supp. F): ``n- = sum_c n_c - n+`` and there is no
background row. The arithmetic itself lives in one place,
:func:`imbalance_cli.losses.longtail.ecm_margins`, which the ECM loss also uses.

Exports (written by :func:`imbalance_cli.report.margins.write_outputs`): ``margins.json`` (the ``--json`` report),
``margins.csv``, ``instance_counts.json`` (per-category instance counts as a bare JSON list in category-id order, the
form the reference ECM code reads) and ``ecm_counts.json``
(``{"schema": "imbalance.ecm_counts/1", "category_ids", "counts", "fg_bg_ratio"}``), which the project's loss takes
directly: ``ecm_loss(logits, labels, **load_ecm_counts(path))``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Optional

import msgspec
import numpy as np

from imbalance_cli.data._io import read_json, validation_message
from imbalance_cli.errors import InputError
from imbalance_cli.stats.batches import anchor_counts
from imbalance_cli.stats.counts import ClassCounts
from imbalance_cli.vocabulary import definitions

SCHEMA = "imbalance.margins/1"
ECM_COUNTS_SCHEMA = "imbalance.ecm_counts/1"
FIELDS = ("n_pos", "n_neg", "gamma_pos", "gamma_neg", "w_pos", "w_neg", "m_pos", "m_neg", "weight")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def measured_fg_bg_ratio(dataset, anchors: str = "retinanet", **anchor_options) -> tuple[float, dict]:
    """Background/foreground anchor ratio ``r`` of ``dataset`` under an anchor preset (Cho &
    Krähenbühl, ECCV 2022, supp. F).

    Counts come from the anchor engine (:func:`imbalance_cli.stats.batches.anchor_counts`: positives,
    and background = anchors - positives - ignored); returns ``(r, counts)``.
    """
    a = anchor_counts(dataset, anchors, **anchor_options)
    fg, bg = float(a["foreground_total"]), float(a["background_total"])
    if fg <= 0:
        raise InputError(
            f"no foreground anchors under preset '{anchors}': cannot measure the fg/bg ratio",
            path=getattr(dataset, "path", None),
        )
    return bg / fg, a


def effective_class_margins(
    counts: ClassCounts, fg_bg_ratio: float | None = None, one_stage: bool = False, ratio_source: str | None = None
) -> dict:
    """The ``imbalance.margins/1`` report: ECM margins and weights for every class (+ background).

    ``fg_bg_ratio`` is ``r = background / foreground`` (Cho & Krähenbühl, ECCV 2022, supp. F, Eq. 35); it is required
    unless ``one_stage`` (then the background is left out and ``fg_bg_ratio`` must be None).
    """
    from imbalance_cli.losses.longtail import ecm_margins  # torch, lazily

    if one_stage and fg_bg_ratio is not None:
        raise InputError("--one-stage leaves the background out: do not combine it with a fg/bg ratio")
    if not one_stage:
        if fg_bg_ratio is None:
            raise InputError("give --fg-bg-ratio R, --anchors PRESET (measured ratio) or --one-stage")
        if not np.isfinite(fg_bg_ratio) or fg_bg_ratio <= 0:
            raise InputError(f"--fg-bg-ratio must be a positive number, got {fg_bg_ratio}")
    if counts.num_classes == 0:
        raise InputError("no categories defined", path=counts.source)
    if counts.instances.sum() <= 0:
        raise InputError("no instances in any category: margins are undefined", path=counts.source)
    try:
        out = ecm_margins(counts.instances.astype(np.float64), None if one_stage else float(fg_bg_ratio))
    except ValueError as e:
        raise InputError(str(e), path=counts.source) from None
    cols = {k: _np(out[k]) for k in FIELDS}
    C = counts.num_classes
    classes = []
    for i in range(C):
        row = {"id": int(counts.ids[i]), "name": str(counts.names[i]), "instances": int(counts.instances[i])}
        row.update({k: float(cols[k][i]) for k in FIELDS})
        classes.append(row)
    background = None
    if not one_stage and len(cols["n_pos"]) > C:
        background = {k: float(cols[k][C]) for k in FIELDS}
    return {
        "schema": SCHEMA,
        "fg_bg_ratio": None if one_stage else float(fg_bg_ratio),
        "fg_bg_ratio_source": ratio_source,
        "one_stage": bool(one_stage),
        "num_classes": C,
        "total_instances": int(counts.instances.sum()),
        "formula_instances": int(np.maximum(counts.instances, 1).sum()),  # empty classes enter as n+ = 1
        "empty_classes": int((counts.instances == 0).sum()),
        "classes": classes,
        "background": background,
        "definitions": definitions(("fg_bg_ratio", "total_instances", "formula_instances")),
    }


def margins_table(report: dict):
    """The margins report as a pandas DataFrame (classes in id order, background row last)."""
    import pandas as pd

    rows = [dict(r) for r in report["classes"]]
    if report.get("background"):
        rows.append({"id": None, "name": "background", **report["background"]})
    return pd.DataFrame(rows, columns=["id", "name", "instances", *FIELDS])


def ecm_counts(report: dict) -> dict:
    """The ``imbalance.ecm_counts/1`` export: ``counts`` (category-id order) and ``fg_bg_ratio`` for ``ecm_loss``."""
    return {
        "schema": ECM_COUNTS_SCHEMA,
        "category_ids": [r["id"] for r in report["classes"]],
        "counts": [r["instances"] for r in report["classes"]],
        "fg_bg_ratio": report["fg_bg_ratio"],
    }


class _EcmCounts(msgspec.Struct):
    schema: str
    counts: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=2**53)]], msgspec.Meta(max_length=1_000_000)]
    fg_bg_ratio: Optional[Annotated[float, msgspec.Meta(ge=0)]] = None


def load_ecm_counts(path: str | os.PathLike) -> dict:
    """Read an ``ecm_counts.json`` export; returns ``{"counts": [...], "fg_bg_ratio": r | None}``.

    The result splats into the loss: ``ecm_loss(logits, labels, **load_ecm_counts(path))``. Read by the bounded
    reader (kind ``ecm-counts``) and checked by type: counts are integers from 0 to 2^53, the ratio a finite
    number >= 0 or null; anything else is one :class:`InputError` naming the file and the field.
    """
    p = Path(path)
    obj = read_json(p, "ecm-counts", type=dict)
    if obj.get("schema") != ECM_COUNTS_SCHEMA or "counts" not in obj:
        raise InputError(f"not an {ECM_COUNTS_SCHEMA} file (from `imbalance margins --out`)", path=p)
    try:
        e = msgspec.convert(obj, _EcmCounts)
    except msgspec.ValidationError as err:
        raise InputError(validation_message(err), path=p) from None
    if e.fg_bg_ratio is not None and not math.isfinite(e.fg_bg_ratio):
        raise InputError(f"field 'fg_bg_ratio': expected a finite number, got {e.fg_bg_ratio}", path=p)
    return {"counts": e.counts, "fg_bg_ratio": e.fg_bg_ratio}
